//! A minimal `.env` reader: `NAME=value` lines, `export ` prefix, `#` comments, single or double
//! quotes around the value. No variable expansion, no multi-line values.

/// Finds `name` in the text of a `.env` file.
pub fn lookup(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line.split_once('=')?;
        if key.trim() != name || line.starts_with('#') {
            return None;
        }
        Some(unquote(value.trim()))
    })
}

fn unquote(value: &str) -> String {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    match value.split_once(" #") {
        Some((before, _)) => before.trim_end().to_owned(),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn reads_plain_quoted_and_exported_values() {
        let text = "# comment\nA=1\nexport B = two\nC=\"three four\"\nD='five' \nE=six # note\n";
        assert_eq!(lookup(text, "A").as_deref(), Some("1"));
        assert_eq!(lookup(text, "B").as_deref(), Some("two"));
        assert_eq!(lookup(text, "C").as_deref(), Some("three four"));
        assert_eq!(lookup(text, "D").as_deref(), Some("five"));
        assert_eq!(lookup(text, "E").as_deref(), Some("six"));
        assert_eq!(lookup(text, "F"), None);
        assert_eq!(lookup("#A=1", "A"), None);
    }
}

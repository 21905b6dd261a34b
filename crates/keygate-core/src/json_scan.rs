//! A JSON text checked, and one of its top-level members found, in one pass over the bytes that
//! builds nothing: the check made on every passed-through answer (where is its `usage`?), and
//! how a request's `model` is rewritten for an upstream without parsing the request.
//!
//! It accepts the JSON texts of RFC 8259 that are valid UTF-8, at any depth: what serde_json
//! accepts, except that serde_json does not look at the bytes of a string it skips, where a
//! client's JSON parser would refuse them. The fuzz target `answer_usage` checks it against
//! serde_json.

use std::ops::Range;

/// Not a JSON text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotJson;

/// Checks that `text` is one JSON value, and returns where the value of its top-level member
/// `name` is, when it is an object that has one (the last, when the name repeats: the one a JSON
/// parser keeps).
pub(crate) fn top_member(text: &[u8], name: &str) -> Result<Option<Range<usize>>, NotJson> {
    // Outside strings, any byte that is not ASCII is refused; strings check their own.
    let mut scan = Scan { text, pos: 0, name };
    scan.document()
}

struct Scan<'a> {
    text: &'a [u8],
    pos: usize,
    /// The member looked for.
    name: &'a str,
}

impl<'a> Scan<'a> {
    fn document(&mut self) -> Result<Option<Range<usize>>, NotJson> {
        // The containers open around the current point, as the byte that closes each.
        let mut open: Vec<u8> = Vec::new();
        let mut found = None;
        // Where the value of a top-level member looked for starts, while it is being read.
        let mut found_start = None;
        loop {
            // A value.
            self.whitespace();
            match self.next()? {
                b'{' => {
                    self.whitespace();
                    if !self.eat(b'}') {
                        open.push(b'}');
                        if self.member_name()? && open.len() == 1 {
                            found_start = Some(self.pos);
                        }
                        continue;
                    }
                }
                b'[' => {
                    self.whitespace();
                    if !self.eat(b']') {
                        open.push(b']');
                        continue;
                    }
                }
                b'"' => {
                    self.string()?;
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                b'-' => self.number()?,
                b'0'..=b'9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                _ => return Err(NotJson),
            }
            // The value is complete: close the containers it completes, up to the next value.
            loop {
                let Some(&close) = open.last() else {
                    self.whitespace();
                    return if self.pos == self.text.len() {
                        Ok(found)
                    } else {
                        Err(NotJson)
                    };
                };
                if open.len() == 1 {
                    if let Some(start) = found_start.take() {
                        found = Some(start..self.pos);
                    }
                }
                self.whitespace();
                match self.next()? {
                    b',' if close == b'}' => {
                        if self.member_name()? && open.len() == 1 {
                            found_start = Some(self.pos);
                        }
                        break;
                    }
                    b',' => break,
                    byte if byte == close => {
                        open.pop();
                    }
                    _ => return Err(NotJson),
                }
            }
        }
    }

    /// A member's name, its colon and the whitespace after it; whether it is the name looked
    /// for.
    #[inline(always)]
    fn member_name(&mut self) -> Result<bool, NotJson> {
        self.whitespace();
        if self.next()? != b'"' {
            return Err(NotJson);
        }
        let start = self.pos - 1;
        let escaped = self.string()?;
        let quoted = &self.text[start..self.pos];
        let wanted = if escaped {
            serde_json::from_slice::<String>(quoted).is_ok_and(|name| name == self.name)
        } else {
            &quoted[1..quoted.len() - 1] == self.name.as_bytes()
        };
        self.whitespace();
        if self.next()? != b':' {
            return Err(NotJson);
        }
        self.whitespace();
        Ok(wanted)
    }

    /// The rest of a string after its opening quote; whether it has escapes. Its non-ASCII
    /// characters must be valid UTF-8.
    #[inline(always)]
    fn string(&mut self) -> Result<bool, NotJson> {
        let mut escaped = false;
        loop {
            self.pos += plain_run(&self.text[self.pos..]);
            match self.next()? {
                b'"' => return Ok(escaped),
                b'\\' => {
                    escaped = true;
                    match self.next()? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                if !self.next()?.is_ascii_hexdigit() {
                                    return Err(NotJson);
                                }
                            }
                        }
                        _ => return Err(NotJson),
                    }
                }
                0..=0x1f => return Err(NotJson),
                lead => {
                    let len = match lead {
                        0xc2..=0xdf => 2,
                        0xe0..=0xef => 3,
                        0xf0..=0xf4 => 4,
                        _ => return Err(NotJson),
                    };
                    let start = self.pos - 1;
                    let char = self.text.get(start..start + len).ok_or(NotJson)?;
                    std::str::from_utf8(char).map_err(|_| NotJson)?;
                    self.pos = start + len;
                }
            }
        }
    }

    /// A number, after its minus sign if it has one.
    fn number(&mut self) -> Result<(), NotJson> {
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return Err(NotJson),
        }
        if self.eat(b'.') {
            self.some_digits()?;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _sign = self.eat(b'+') || self.eat(b'-');
            self.some_digits()?;
        }
        Ok(())
    }

    fn some_digits(&mut self) -> Result<(), NotJson> {
        if !self.next()?.is_ascii_digit() {
            return Err(NotJson);
        }
        self.digits();
        Ok(())
    }

    fn digits(&mut self) {
        while self.text.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    /// The rest of `true`, `false` or `null` after its first letter.
    fn literal(&mut self, rest: &[u8]) -> Result<(), NotJson> {
        if !self.text[self.pos..].starts_with(rest) {
            return Err(NotJson);
        }
        self.pos += rest.len();
        Ok(())
    }

    #[inline(always)]
    fn whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let found = self.text.get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    #[inline(always)]
    fn next(&mut self) -> Result<u8, NotJson> {
        let byte = *self.text.get(self.pos).ok_or(NotJson)?;
        self.pos += 1;
        Ok(byte)
    }
}

/// How many bytes at the start of `bytes` a string scan can pass over: the bytes before the
/// first `"`, backslash, control character or non-ASCII byte. Eight at a time: in each word,
/// the lowest byte flagged by these tests is the first such byte (a test can flag bytes above
/// the first it matches, never below).
#[inline(always)]
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = ONES * 0x80;
    let mut run = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flagged = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word)
            | word;
        let flagged = flagged & HIGHS;
        if flagged != 0 {
            return run + flagged.trailing_zeros() as usize / 8;
        }
        run += 8;
    }
    let rest = &bytes[run..];
    run + rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
        .unwrap_or(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_top_level_member_of_the_name_is_found() {
        let cases: [(&str, Option<&str>); 10] = [
            (
                r#"{"id":"x","usage":{"a":[1,{"b":2}]},"z":null}"#,
                Some(r#"{"a":[1,{"b":2}]}"#),
            ),
            (r#" { "usage" : 7 } "#, Some("7")),
            (
                r#"{"usage":"u","usage":[true, false]}"#,
                Some("[true, false]"),
            ),
            (r#"{"usa\u0067e":null}"#, Some("null")),
            (r#"{"x":{"usage":1},"y":[{"usage":2}]}"#, None),
            (r#"[{"usage":1}]"#, None),
            (r#"{"usage\u0000":1}"#, None),
            ("{}", None),
            ("-0.5e+7", None),
            (r#""usage""#, None),
        ];
        for (text, want) in cases {
            let got = top_member(text.as_bytes(), "usage").unwrap();
            assert_eq!(got.map(|at| &text[at]), want, "{text}");
        }
    }

    #[test]
    fn only_json_is_accepted() {
        for text in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":}",
            "{\"a\":1,}",
            "{1:2}",
            "{\"a\" 1}",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "tru",
            "nul",
            "True",
            "[1 2]",
            "\"a",
            "\"\\x\"",
            "\"\\u12g4\"",
            "\"a\nb\"",
            "{} {}",
            "[]]",
            "[}",
            "{]",
            "\u{feff}{}",
            "1 x",
            "NaN",
        ] {
            assert_eq!(
                top_member(text.as_bytes(), "usage"),
                Err(NotJson),
                "{text:?}"
            );
        }
        for text in [
            "0",
            "-0",
            "1.25E-3",
            "true",
            "null",
            "\"\\ud83d\\ude00 é\"",
            "[[],{},[{}]]",
            " \t\r\n[ 1 , \"2\" ]\n",
        ] {
            assert!(top_member(text.as_bytes(), "usage").is_ok(), "{text:?}");
        }
        // Invalid UTF-8 inside a string: serde_json skips over it; a client would not.
        for text in [
            &b"{\"a\":\"\xff\"}"[..],
            b"\"\xc3\"",
            b"\"\xc0\x80\"",
            b"\"\xed\xa0\x80\"",
            b"\"\xf4\x90\x80\x80\"",
            b"\"\xe2\x82",
            b"[\xc3\xa9]",
        ] {
            assert_eq!(top_member(text, "usage"), Err(NotJson), "{text:?}");
        }
        assert!(top_member("\"é€😀 plain text after\"".as_bytes(), "usage").is_ok());
    }

    #[test]
    fn plain_runs_stop_at_the_first_byte_to_look_at() {
        let text = b"abcdefghijklmnopqrstuvwxyz0123456789";
        for at in 0..text.len() {
            for special in [b'"', b'\\', b'\n', 0, 0x1f, 0x80, 0xff] {
                let mut bytes = text.to_vec();
                bytes[at] = special;
                // Bytes after the first one to look at must not move the answer.
                for later in at + 1..bytes.len() {
                    bytes[later] = [b'"', 0x00, 0xe9, b'a'][later % 4];
                }
                assert_eq!(plain_run(&bytes), at, "{special:#x} at {at}");
            }
        }
        assert_eq!(plain_run(text), text.len());
        assert_eq!(plain_run(b""), 0);
    }

    #[test]
    fn depth_is_not_limited() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(top_member(deep.as_bytes(), "usage").is_ok());
    }
}

//! `${VAR}` and `${VAR:-default}` interpolation of the raw config text.
//!
//! The environment is read through the [`Env`] trait so tests pass a map instead of calling
//! `set_var`. `$$` escapes a literal dollar. An unset variable without a default is an error
//! that names it; its value is never echoed back.

use std::collections::HashMap;

/// Where interpolation reads variables from.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Env for HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

/// Why interpolation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InterpolateError {
    /// `${NAME}` refers to a variable that is not set and has no `:-default`.
    #[error("line {line}: environment variable `{name}` is not set (use ${{{name}:-default}} for a default)")]
    Unset { name: String, line: usize },
    /// A `${` without its closing `}` or with an invalid name.
    #[error(
        "line {line}: malformed variable reference (expected ${{NAME}} or ${{NAME:-default}})"
    )]
    Malformed { line: usize },
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text`.
///
/// Lines whose first non-blank character is `#` are copied untouched, so commented-out
/// examples do not require their variables.
pub fn interpolate(text: &str, env: &dyn Env) -> Result<String, InterpolateError> {
    interpolate_tracked(text, env).map(|(text, _)| text)
}

/// Like [`interpolate`], also returning the values read from the environment (secrets among
/// them), so error messages about the result can be scrubbed of them.
pub fn interpolate_tracked(
    text: &str,
    env: &dyn Env,
) -> Result<(String, Vec<String>), InterpolateError> {
    let mut out = String::with_capacity(text.len());
    let mut values = Vec::new();
    for (index, line) in text.split_inclusive('\n').enumerate() {
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        interpolate_line(line, index + 1, env, &mut out, &mut values)?;
    }
    Ok((out, values))
}

fn interpolate_line(
    line: &str,
    line_no: usize,
    env: &dyn Env,
    out: &mut String,
    values: &mut Vec<String>,
) -> Result<(), InterpolateError> {
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner_start) = after.strip_prefix('{') {
            let end = inner_start
                .find('}')
                .ok_or(InterpolateError::Malformed { line: line_no })?;
            let inner = &inner_start[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                return Err(InterpolateError::Malformed { line: line_no });
            }
            match (env.var(name), default) {
                (Some(value), None) => {
                    out.push_str(&value);
                    values.push(value);
                }
                (Some(value), Some(_)) if !value.is_empty() => {
                    out.push_str(&value);
                    values.push(value);
                }
                (_, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(InterpolateError::Unset {
                        name: name.to_owned(),
                        line: line_no,
                    })
                }
            }
            rest = &inner_start[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(())
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let env = env(&[("A", "one"), ("EMPTY", "")]);
        let got = interpolate("a: ${A}\nb: ${B:-two}\nc: ${EMPTY:-three}\n", &env).unwrap();
        assert_eq!(got, "a: one\nb: two\nc: three\n");
    }

    #[test]
    fn empty_value_without_default_is_kept_empty() {
        let got = interpolate("a: '${EMPTY}'", &env(&[("EMPTY", "")])).unwrap();
        assert_eq!(got, "a: ''");
    }

    #[test]
    fn unset_variable_is_named_with_its_line() {
        let err = interpolate("x: 1\nkey: ${NOPE}\n", &env(&[])).unwrap_err();
        assert_eq!(
            err,
            InterpolateError::Unset {
                name: "NOPE".into(),
                line: 2
            }
        );
    }

    #[test]
    fn dollar_escapes_and_plain_dollars_pass() {
        let got = interpolate("a: $$HOME costs $5", &env(&[])).unwrap();
        assert_eq!(got, "a: $HOME costs $5");
    }

    #[test]
    fn comments_are_not_interpolated() {
        let got = interpolate("  # ${NOT_SET}\na: b\n", &env(&[])).unwrap();
        assert_eq!(got, "  # ${NOT_SET}\na: b\n");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(interpolate("a: ${OPEN", &env(&[])).is_err());
        assert!(interpolate("a: ${1BAD}", &env(&[])).is_err());
        assert!(interpolate("a: ${}", &env(&[])).is_err());
    }
}

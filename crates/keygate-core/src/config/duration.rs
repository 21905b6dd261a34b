//! Human durations in config: `300s`, `5m`, `1h`, `768h`, `1h30m`, `250ms`, `2d`, or a bare
//! number of seconds. Serde helpers deserialize a [`Duration`] from either a string or a number.
//!
//! This is the config file's grammar (Go/Vault style). LiteLLM's key-API grammar is separate and
//! lives with the key routes.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Parses `1h30m`, `300s`, `250ms`, `2d`, `1w` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".to_owned());
    }
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration `{text}`: expected a number"));
        }
        let value: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration `{text}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_ms: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            other => {
                return Err(format!(
                    "invalid duration `{text}`: unknown unit `{other}` (use ms, s, m, h, d or w)"
                ))
            }
        };
        rest = &rest[unit_len..];
        let ms = value
            .checked_mul(unit_ms)
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
        total = total
            .checked_add(Duration::from_millis(ms))
            .ok_or_else(|| format!("invalid duration `{text}`: too large"))?;
    }
    Ok(total)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Secs(u64),
    Text(String),
}

/// `#[serde(deserialize_with = "duration::deserialize")]`
pub fn deserialize<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    match Raw::deserialize(de)? {
        Raw::Secs(secs) => Ok(Duration::from_secs(secs)),
        Raw::Text(text) => parse_duration(&text).map_err(serde::de::Error::custom),
    }
}

/// Like [`deserialize`] for `Option<Duration>` fields.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(de: D) -> Result<Option<Duration>, D::Error> {
    deserialize(de).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(
            parse_duration("768h").unwrap(),
            Duration::from_secs(768 * 3600)
        );
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "h", "5x", "1.5h", "-1s", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}

//! Vault's duration inputs (`parseutil.ParseDurationSecond`): a number of seconds (JSON number
//! or numeric string, as the `bao`/`vault` CLI sends every `key=value` as a string), a number of
//! days (`7d`), or Go's duration grammar (`768h`, `1h30m`, `1.5h`, `90s`). Fields typed
//! `TypeDurationSecond` keep whole seconds.

use std::time::Duration;

use serde_json::Value;

/// Why a duration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{0}`: use seconds (e.g. 3600) or a duration such as 1h, 30m, 768h, 7d")]
pub struct VaultDurationError(pub String);

/// Parses a duration field as Vault does; `null` and `""` are zero.
pub fn parse_value(value: &Value) -> Result<Duration, VaultDurationError> {
    match value {
        Value::Null => Ok(Duration::ZERO),
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Ok(Duration::from_secs(secs)),
            (None, Some(secs)) if secs >= 0.0 && secs.is_finite() => {
                Ok(Duration::from_secs(secs.trunc() as u64))
            }
            _ => Err(VaultDurationError(n.to_string())),
        },
        Value::String(text) => parse(text),
        other => Err(VaultDurationError(other.to_string())),
    }
}

/// Parses a duration string as Vault does.
pub fn parse(text: &str) -> Result<Duration, VaultDurationError> {
    let bad = || VaultDurationError(text.to_owned());
    let text = text.trim();
    if text.is_empty() {
        return Ok(Duration::ZERO);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad());
    }
    if let Some(days) = text.strip_suffix('d') {
        if !days.is_empty() && days.bytes().all(|b| b.is_ascii_digit()) {
            let days: u64 = days.parse().map_err(|_| bad())?;
            return days
                .checked_mul(86_400)
                .map(Duration::from_secs)
                .ok_or_else(bad);
        }
    }
    go_duration(text).ok_or_else(bad)
}

/// Go's `time.ParseDuration` for non-negative values: one or more `<decimal><unit>` pairs,
/// computed as Go does, in whole nanoseconds with only a fraction's digits scaled through a
/// float, so `2.3h` is 8280 s (not 8279) and what [`go_string`] prints parses back exactly.
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (whole, tail) = split_digits(rest);
        let (fraction, tail) = match tail.strip_prefix('.') {
            Some(after) => split_digits(after),
            None => ("", tail),
        };
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let per: u64 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut nanos = whole.checked_mul(per)?;
        let (digits, scale) = leading_fraction(fraction);
        if digits > 0 {
            nanos = nanos.checked_add((digits as f64 * (per as f64 / scale)) as u64)?;
        }
        total = total.checked_add(nanos)?;
        rest = tail;
    }
    Some(Duration::from_nanos(total))
}

/// `text` split after its leading ASCII digits.
fn split_digits(text: &str) -> (&str, &str) {
    text.split_at(text.bytes().take_while(u8::is_ascii_digit).count())
}

/// Go's `leadingFraction`: the digits as an integer and ten to the number of digits kept (the
/// digits past 2^63 are dropped, as Go drops them).
fn leading_fraction(digits: &str) -> (u64, f64) {
    let (mut value, mut scale) = (0u64, 1f64);
    for digit in digits.bytes() {
        if value > i64::MAX as u64 / 10 {
            break;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > 1 << 63 {
            break;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale)
}

/// Go's `time.Duration.String()` for whole seconds, as Vault prints durations in warnings
/// (`1m30s`, `1h0m0s`).
pub fn go_string(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// Vault's `humanDuration`: Go's form without zero elements (`1h0m0s` -> `1h`).
pub fn human(secs: u64) -> String {
    let mut s = go_string(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if let Some(idx) = s.find("h0m") {
        s = format!("{}{}", &s[..=idx], &s[idx + 3..]);
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn secs(text: &str) -> u64 {
        parse(text).unwrap().as_secs()
    }

    #[test]
    fn vault_inputs() {
        assert_eq!(secs("60"), 60);
        assert_eq!(secs("768h"), 768 * 3600);
        assert_eq!(secs("1h30m"), 5400);
        assert_eq!(secs("1.5h"), 5400);
        assert_eq!(secs("90s"), 90);
        assert_eq!(secs("7d"), 7 * 86_400);
        assert_eq!(secs(""), 0);
        assert_eq!(secs("1500ms"), 1);
        for bad in ["-5s", "1x", "h", "1h-", "abc", "1.2.3s", "1 h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_value(&json!(90)).unwrap().as_secs(), 90);
        assert_eq!(parse_value(&json!("90")).unwrap().as_secs(), 90);
        assert_eq!(parse_value(&json!(null)).unwrap().as_secs(), 0);
        assert!(parse_value(&json!(-1)).is_err());
        assert!(parse_value(&json!([1])).is_err());
    }

    /// Found by the `duration` fuzz target: `1851851h51m5s` (6666666665 s as Go prints it) was
    /// summed in floating point and read back as 6666666664 s; `2.3h` was 8279 s.
    #[test]
    fn computed_in_whole_nanoseconds_as_go_does() {
        assert_eq!(secs("1851851h51m5s"), 6_666_666_665);
        assert_eq!(secs("2.3h"), 8280);
        assert_eq!(secs("4.35h"), 15_660);
        assert_eq!(secs(".5h"), 1800);
        assert_eq!(secs("1.h"), 3600);
        assert_eq!(parse("0.9999999999s").unwrap().as_nanos(), 999_999_999);
        assert_eq!(parse("1µs1μs1us").unwrap().as_nanos(), 3000);
        for bad in [".s", "1..5s", "1.5.h", "99999999999999999999s", "5124096h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        for n in [
            1,
            59,
            3599,
            86_399,
            6_666_666_665,
            u64::from(u32::MAX),
            9_000_000_000,
        ] {
            assert_eq!(secs(&go_string(n)), n);
            assert_eq!(secs(&human(n)), n);
        }
    }

    #[test]
    fn printed_like_go_and_vault() {
        assert_eq!(go_string(90), "1m30s");
        assert_eq!(go_string(3600), "1h0m0s");
        assert_eq!(human(3600), "1h");
        assert_eq!(human(3660), "1h1m");
        assert_eq!(human(7230), "2h30s");
        assert_eq!(human(45), "45s");
        assert_eq!(human(0), "0s");
    }
}

//! A small RFC 3339 timestamp parser for an exec helper's `expires_at`, so the crate needs no
//! date library: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `t`/space accepted for `T` and
//! `z` for `Z`. Fractions beyond nanoseconds are truncated; a leap second (`:60`) counts as the
//! next second. Nothing else (no week dates, no missing offset) is accepted.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The instant `text` names, or `None` when it is not an RFC 3339 timestamp.
pub(crate) fn parse(text: &str) -> Option<SystemTime> {
    let mut p = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    let year = p.digits(4)?;
    p.expect(b"-")?;
    let month = p.digits(2)?;
    p.expect(b"-")?;
    let day = p.digits(2)?;
    p.expect(b"Tt ")?;
    let hour = p.digits(2)?;
    p.expect(b":")?;
    let minute = p.digits(2)?;
    p.expect(b":")?;
    let second = p.digits(2)?;
    let nanos = p.fraction()?;
    let offset = p.offset()?;
    if p.at != p.bytes.len() {
        return None;
    }
    let valid = (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60;
    if !valid {
        return None;
    }
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset;
    let whole = if secs >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))
    };
    whole?.checked_add(Duration::from_nanos(nanos))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<i64> {
        let digits = self.bytes.get(self.at..self.at + n)?;
        let mut value = 0i64;
        for &b in digits {
            if !b.is_ascii_digit() {
                return None;
            }
            value = value * 10 + i64::from(b - b'0');
        }
        self.at += n;
        Some(value)
    }

    /// One byte out of `allowed`.
    fn expect(&mut self, allowed: &[u8]) -> Option<()> {
        let b = self.bytes.get(self.at)?;
        allowed.contains(b).then(|| self.at += 1)
    }

    /// `.digits` as nanoseconds (0 when absent; at least one digit after the dot).
    fn fraction(&mut self) -> Option<u64> {
        if self.bytes.get(self.at) != Some(&b'.') {
            return Some(0);
        }
        self.at += 1;
        let start = self.at;
        let mut nanos = 0u64;
        while let Some(b) = self.bytes.get(self.at).filter(|b| b.is_ascii_digit()) {
            if self.at - start < 9 {
                nanos = nanos * 10 + u64::from(b - b'0');
            }
            self.at += 1;
        }
        let len = self.at - start;
        if len == 0 {
            return None;
        }
        Some(nanos * 10u64.pow(9u32.saturating_sub(len as u32)))
    }

    /// `Z` or `±HH:MM` as seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        let sign = match self.bytes.get(self.at)? {
            b'Z' | b'z' => {
                self.at += 1;
                return Some(0);
            }
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        self.at += 1;
        let hours = self.digits(2)?;
        self.expect(b":")?;
        let minutes = self.digits(2)?;
        (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3_600 + minutes * 60))
    }
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Option<f64> {
        parse(text).map(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        })
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(secs("2024-02-29T12:30:45Z"), Some(1_709_209_845.0));
        assert_eq!(secs("2024-02-29T14:30:45+02:00"), Some(1_709_209_845.0));
        assert_eq!(secs("2024-02-29t07:00:45-05:30"), Some(1_709_209_845.0));
        assert_eq!(secs("2024-02-29 12:30:45.25z"), Some(1_709_209_845.25));
        assert_eq!(secs("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(secs("1969-12-31T23:59:59Z"), Some(-1.0));
        assert_eq!(secs("2016-12-31T23:59:60Z"), Some(1_483_228_800.0));
        let nanos = parse("2024-01-01T00:00:00.123456789999Z").unwrap();
        let d = nanos.duration_since(UNIX_EPOCH).unwrap();
        assert_eq!(d.subsec_nanos(), 123_456_789);
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "tomorrow",
            "2024-02-29T12:30:45",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Z ",
            "24-01-01T00:00:00Z",
            "2024-01-01T00:00:00+24:00",
            "１９７０-01-01T00:00:00Z",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}

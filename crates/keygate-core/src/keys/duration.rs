//! LiteLLM's duration grammar for `duration` and `budget_duration`: a whole number and one unit,
//! `s`, `m`, `h`, `d`, `w` or `mo` (calendar months, the day clamped to the target month's last
//! day, as LiteLLM's `duration_in_seconds`). A bare number, a fraction, a sign or anything after
//! the unit is refused.

/// Why a duration is refused (the message names the grammar).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid duration `{0}`: use a whole number and a unit, one of s, m, h, d, w, mo (e.g. 30s, 12h, 30d, 1mo)")]
pub struct DurationError(pub String);

/// A parsed duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LitellmDuration {
    /// A fixed number of seconds.
    Seconds(u64),
    /// Calendar months.
    Months(u32),
}

/// Parses `text` strictly.
pub fn parse(text: &str) -> Result<LitellmDuration, DurationError> {
    let bad = || DurationError(text.to_owned());
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    if number.is_empty() || number.len() > 12 {
        return Err(bad());
    }
    let value: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |per: u64| {
        value
            .checked_mul(per)
            .map(LitellmDuration::Seconds)
            .ok_or_else(bad)
    };
    match unit {
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3_600),
        "d" => seconds(86_400),
        "w" => seconds(604_800),
        "mo" => u32::try_from(value)
            .ok()
            .filter(|m| *m <= 1_200)
            .map(LitellmDuration::Months)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

impl LitellmDuration {
    /// The instant (Unix ms) this long after `from_ms`, saturating at `i64::MAX`.
    pub fn after(self, from_ms: i64) -> i64 {
        match self {
            Self::Seconds(s) => saturate(i128::from(from_ms) + i128::from(s) * 1000),
            Self::Months(months) => add_months(from_ms, months),
        }
    }
}

/// Milliseconds computed in `i128`, clamped to `i64`.
fn saturate(ms: i128) -> i64 {
    i64::try_from(ms).unwrap_or(if ms < 0 { i64::MIN } else { i64::MAX })
}

/// `from_ms` plus `months` calendar months (UTC), the day clamped to the month's last day.
fn add_months(from_ms: i64, months: u32) -> i64 {
    let day_ms = 86_400_000;
    let days = from_ms.div_euclid(day_ms);
    let time_of_day = from_ms.rem_euclid(day_ms);
    let (year, month, day) = civil_from_days(days);
    let total = i64::from(month) - 1 + i64::from(months);
    let year = year + total.div_euclid(12);
    let month = u32::try_from(total.rem_euclid(12) + 1).unwrap_or(1);
    let day = day.min(days_in_month(year, month));
    let days = days_from_civil(year, month, day);
    saturate(i128::from(days) * i128::from(day_ms) + i128::from(time_of_day))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 -> (year, month, day), Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Unix seconds as RFC 3339 UTC, `2026-11-22T00:00:00Z`.
pub fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let t = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

/// (year, month, day) -> days since 1970-01-01.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar() {
        assert_eq!(parse("30s"), Ok(LitellmDuration::Seconds(30)));
        assert_eq!(parse("5m"), Ok(LitellmDuration::Seconds(300)));
        assert_eq!(parse("2h"), Ok(LitellmDuration::Seconds(7_200)));
        assert_eq!(parse("30d"), Ok(LitellmDuration::Seconds(2_592_000)));
        assert_eq!(parse("1w"), Ok(LitellmDuration::Seconds(604_800)));
        assert_eq!(parse("2mo"), Ok(LitellmDuration::Months(2)));
        for bad in [
            "30",
            "",
            "s",
            "1.5h",
            "-1s",
            "10x",
            "10s ",
            " 10s",
            "1y",
            "10 s",
            "99999999999999s",
            "1M",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("30").unwrap_err().to_string().contains("mo"));
    }

    #[test]
    fn months_are_calendar_months_with_the_day_clamped() {
        let at = |y, m, d| days_from_civil(y, m, d) * 86_400_000 + 3_600_000;
        assert_eq!(
            LitellmDuration::Months(1).after(at(2026, 1, 31)),
            at(2026, 2, 28)
        );
        assert_eq!(
            LitellmDuration::Months(1).after(at(2028, 1, 31)),
            at(2028, 2, 29)
        );
        assert_eq!(
            LitellmDuration::Months(2).after(at(2026, 11, 22)),
            at(2027, 1, 22)
        );
        assert_eq!(
            LitellmDuration::Months(12).after(at(2026, 3, 1)),
            at(2027, 3, 1)
        );
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_600), "2026-11-22T00:00:00Z");
        assert_eq!(LitellmDuration::Seconds(60).after(1_000), 61_000);
    }

    /// Found by the `duration` fuzz target: `1mo` after an instant near `i64::MAX` overflowed
    /// (a panic in debug builds); seconds saturated before adding, losing the exact sum.
    #[test]
    fn after_saturates_instead_of_overflowing() {
        assert_eq!(LitellmDuration::Months(1).after(i64::MAX), i64::MAX);
        assert_eq!(LitellmDuration::Months(1200).after(i64::MAX - 1), i64::MAX);
        assert_eq!(LitellmDuration::Months(0).after(i64::MIN), i64::MIN);
        assert_eq!(LitellmDuration::Seconds(1).after(i64::MAX), i64::MAX);
        // `16534391534w`: more milliseconds than `i64::MAX`, yet the sum is in range.
        let weeks = parse("16534391534w").unwrap();
        let exact = i128::from(i64::MIN) + 16_534_391_534 * 604_800 * 1000;
        assert_eq!(weeks.after(i64::MIN), i64::try_from(exact).unwrap());
    }
}

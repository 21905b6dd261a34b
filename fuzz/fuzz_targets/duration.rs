//! The duration grammars on arbitrary text: LiteLLM's (`keys::duration`, key API), Vault's
//! (`engine::duration`, the secrets engine) and the config file's (`config::duration`).
//!
//! Invariants: no panic; an accepted LiteLLM duration moves any instant forward by what it
//! says (saturating, never wrapping); Vault's parser agrees with itself on JSON strings and
//! reads back the durations it prints; a bare number is that many seconds in every grammar.

#![no_main]

use std::time::Duration;

use keygate_core::config::duration::parse_duration;
use keygate_core::engine::duration as vault;
use keygate_core::keys::duration::{self as litellm, LitellmDuration};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Instants (Unix ms) durations are added to: the epoch, 2026, month ends, the extremes.
const INSTANTS: &[i64] = &[
    0,
    -1,
    1_767_225_600_000,   // 2026-01-01
    1_769_817_600_000,   // 2026-01-31
    1_835_395_200_000,   // 2028-02-29
    253_402_300_799_000, // 9999-12-31T23:59:59
    -62_135_596_800_000, // 0001-01-01
    i64::MAX,
    i64::MIN,
    i64::MAX - 86_400_000,
];

const DAY_MS: i64 = 86_400_000;

fn check_litellm(text: &str) {
    let Ok(duration) = litellm::parse(text) else {
        return;
    };
    assert!(text.len() <= 14 && text.starts_with(|c: char| c.is_ascii_digit()));
    for &from in INSTANTS {
        let to = duration.after(from);
        assert!(to >= from, "{text} after {from} = {to}");
        match duration {
            LitellmDuration::Seconds(secs) => {
                let exact = i128::from(from) + i128::from(secs) * 1000;
                let expected = i64::try_from(exact).unwrap_or(i64::MAX);
                assert_eq!(to, expected, "{text} after {from}");
            }
            LitellmDuration::Months(months) => {
                assert!(months <= 1_200);
                let months = i64::from(months);
                // Unless saturated, between 28 and 31 days a month.
                if to != i64::MAX {
                    let elapsed = i128::from(to) - i128::from(from);
                    assert!(
                        elapsed >= i128::from(months * 28 * DAY_MS),
                        "{text} after {from}"
                    );
                    assert!(
                        elapsed <= i128::from(months * 31 * DAY_MS),
                        "{text} after {from}"
                    );
                }
            }
        }
        let stamp = litellm::rfc3339(to.div_euclid(1000));
        assert!(stamp.ends_with('Z') && stamp.len() >= 20, "{stamp}");
    }
}

/// Go's `time.Duration` holds at most 2^63 - 1 ns: Vault's round trip is promised below that.
const GO_MAX_SECS: u64 = (i64::MAX as u64) / 1_000_000_000;

fn check_vault(text: &str) {
    let parsed = vault::parse(text);
    let as_json = vault::parse_value(&Value::String(text.to_owned()));
    assert_eq!(parsed, as_json, "{text:?}");
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(secs) = trimmed.parse::<u64>() {
            assert_eq!(parsed, Ok(Duration::from_secs(secs)), "{text:?}");
        }
    }
    let Ok(duration) = parsed else {
        return;
    };
    let secs = duration.as_secs();
    if secs <= GO_MAX_SECS {
        for printed in [vault::go_string(secs), vault::human(secs)] {
            let back = vault::parse(&printed);
            assert_eq!(
                back,
                Ok(Duration::from_secs(secs)),
                "{text:?} printed as {printed}"
            );
        }
    }
}

fn check_config(text: &str) {
    let Ok(duration) = parse_duration(text) else {
        return;
    };
    let trimmed = text.trim();
    if let Ok(secs) = trimmed.parse::<u64>() {
        assert_eq!(duration, Duration::from_secs(secs), "{text:?}");
    }
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    check_litellm(&text);
    check_vault(&text);
    check_config(&text);
});

//! Lease TTLs exactly as Vault's `framework.CalculateTTL` computes them: the TTL is the
//! requested increment, else the role's `ttl`, else the engine's `default_lease_ttl`; the maximum
//! is the smallest set of the role's `max_ttl` and the engine's `max_lease_ttl`, counted from the
//! lease's issue time; a TTL reaching past it is capped with a warning, and a lease already past
//! it cannot be renewed. Times are whole seconds, as in Vault.

use super::duration::human;

/// What a TTL calculation needs, in seconds (0 = not set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlInputs {
    /// The increment asked for (renew) or 0.
    pub increment: u64,
    /// The role's `ttl`.
    pub role_ttl: u64,
    /// The role's `max_ttl`.
    pub role_max_ttl: u64,
    /// The engine's `default_lease_ttl`.
    pub default_lease_ttl: u64,
    /// The engine's `max_lease_ttl`.
    pub max_lease_ttl: u64,
}

/// Why no TTL can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    /// Neither the role nor the engine has a positive maximum.
    #[error("max TTL must be greater than zero")]
    NoMax,
    /// The lease reached its maximum lifetime.
    #[error("past the max TTL, cannot renew")]
    PastMax,
}

/// A lease duration and Vault's warnings about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ttl {
    /// Seconds from now.
    pub ttl: u64,
    /// Vault's warning texts, e.g. when the TTL was capped.
    pub warnings: Vec<String>,
}

/// The TTL from `now` of a lease issued at `issued` (Unix seconds).
pub fn calculate(inputs: &TtlInputs, issued: i64, now: i64) -> Result<Ttl, TtlError> {
    let mut max = inputs.max_lease_ttl;
    if inputs.role_max_ttl > 0 && (max == 0 || inputs.role_max_ttl < max) {
        max = inputs.role_max_ttl;
    }
    if max == 0 {
        return Err(TtlError::NoMax);
    }
    let mut ttl = if inputs.increment > 0 {
        inputs.increment
    } else if inputs.role_ttl > 0 {
        inputs.role_ttl
    } else {
        inputs.default_lease_ttl
    };
    let max_valid_until = issued.saturating_add(i64::try_from(max).unwrap_or(i64::MAX));
    let left = max_valid_until - now;
    if left <= 0 {
        return Err(TtlError::PastMax);
    }
    let left = u64::try_from(left).unwrap_or(0);
    let mut warnings = Vec::new();
    if ttl > left {
        warnings.push(format!(
            "TTL of \"{}\" exceeded the effective max_ttl of \"{}\"; TTL value is capped accordingly",
            human(ttl),
            human(left)
        ));
        ttl = left;
    }
    Ok(Ttl { ttl, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENGINE: TtlInputs = TtlInputs {
        increment: 0,
        role_ttl: 0,
        role_max_ttl: 0,
        default_lease_ttl: 768 * 3600,
        max_lease_ttl: 768 * 3600,
    };

    fn at(inputs: TtlInputs, issued: i64, now: i64) -> Result<Ttl, TtlError> {
        calculate(&inputs, issued, now)
    }

    #[test]
    fn increment_then_role_ttl_then_engine_default() {
        let t = |increment, role_ttl| {
            at(
                TtlInputs {
                    increment,
                    role_ttl,
                    ..ENGINE
                },
                0,
                0,
            )
            .unwrap()
            .ttl
        };
        assert_eq!(t(90, 60), 90);
        assert_eq!(t(0, 60), 60);
        assert_eq!(t(0, 0), 768 * 3600);
    }

    #[test]
    fn the_smallest_max_counts_from_issue_time_and_caps_with_a_warning() {
        let role = TtlInputs {
            role_ttl: 60,
            role_max_ttl: 120,
            ..ENGINE
        };
        assert_eq!(
            at(role, 1000, 1000).unwrap(),
            Ttl {
                ttl: 60,
                warnings: vec![]
            }
        );
        // Renewing by 90 at t+60: only 60 s are left before the max.
        let renew = TtlInputs {
            increment: 90,
            ..role
        };
        let capped = at(renew, 1000, 1060).unwrap();
        assert_eq!(capped.ttl, 60);
        assert_eq!(
            capped.warnings,
            vec!["TTL of \"1m30s\" exceeded the effective max_ttl of \"1m\"; TTL value is capped accordingly"]
        );
        // At the max: no renewal.
        assert_eq!(at(renew, 1000, 1120), Err(TtlError::PastMax));
        // The engine's max wins when smaller than the role's.
        let engine_small = TtlInputs {
            role_max_ttl: 7200,
            max_lease_ttl: 600,
            ..role
        };
        assert_eq!(
            at(
                TtlInputs {
                    increment: 3600,
                    ..engine_small
                },
                0,
                0
            )
            .unwrap()
            .ttl,
            600
        );
        // A role max of 0 means the engine's.
        assert_eq!(
            at(
                TtlInputs {
                    role_ttl: 0,
                    ..ENGINE
                },
                0,
                0
            )
            .unwrap()
            .ttl,
            768 * 3600
        );
        assert_eq!(
            at(
                TtlInputs {
                    max_lease_ttl: 0,
                    ..ENGINE
                },
                0,
                0
            ),
            Err(TtlError::NoMax)
        );
    }
}

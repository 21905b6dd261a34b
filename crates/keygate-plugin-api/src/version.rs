//! Which keygate versions a plugin works with.

use std::cmp::Ordering;
use std::fmt;

/// A `MAJOR.MINOR.PATCH` version (`MAJOR.MINOR` means `.0`); a pre-release or build suffix
/// (`-rc.1`, `+abc`) is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Incompatible changes.
    pub major: u64,
    /// Additions.
    pub minor: u64,
    /// Fixes.
    pub patch: u64,
}

impl Version {
    /// Parses `1.2.3`, `1.2` or `v1.2.3`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let core = text
            .trim()
            .trim_start_matches('v')
            .split(['-', '+'])
            .next()
            .unwrap_or_default();
        let mut parts = core.split('.');
        let mut number = |what: &str, required: bool| -> Result<u64, String> {
            match parts.next() {
                Some(part) => part.parse::<u64>().map_err(|_| {
                    format!("`{text}` is not a version (MAJOR.MINOR.PATCH): bad {what}")
                }),
                None if required => Err(format!(
                    "`{text}` is not a version (MAJOR.MINOR.PATCH): missing {what}"
                )),
                None => Ok(0),
            }
        };
        let version = Self {
            major: number("major", true)?,
            minor: number("minor", true)?,
            patch: number("patch", false)?,
        };
        if parts.next().is_some() {
            return Err(format!(
                "`{text}` is not a version (MAJOR.MINOR.PATCH): too many parts"
            ));
        }
        Ok(version)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The keygate versions a plugin declares it works with: `core_min_version <= keygate`, and
/// `keygate <= core_max_version` when a maximum is given (both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginCompatibility {
    /// The oldest keygate the plugin works with. Required.
    pub core_min_version: String,
    /// The newest keygate the plugin works with, if it knows one.
    pub core_max_version: Option<String>,
}

impl PluginCompatibility {
    /// Works with `min` and everything after it.
    pub fn from(min: impl Into<String>) -> Self {
        Self {
            core_min_version: min.into(),
            core_max_version: None,
        }
    }

    /// Works with `min` up to and including `max`.
    pub fn between(min: impl Into<String>, max: impl Into<String>) -> Self {
        Self {
            core_min_version: min.into(),
            core_max_version: Some(max.into()),
        }
    }

    /// Whether `core` lies in the range; the error says why not (or that the range itself is
    /// malformed).
    pub fn check(&self, core: &str) -> Result<(), String> {
        let core = Version::parse(core)?;
        let min = Version::parse(&self.core_min_version)
            .map_err(|err| format!("core_min_version: {err}"))?;
        let max = match &self.core_max_version {
            Some(max) => {
                Some(Version::parse(max).map_err(|err| format!("core_max_version: {err}"))?)
            }
            None => None,
        };
        if let Some(max) = max {
            if max.cmp(&min) == Ordering::Less {
                return Err(format!(
                    "core_max_version {max} is older than core_min_version {min}"
                ));
            }
            if core > max {
                return Err(format!(
                    "it supports keygate {min} to {max}; this is keygate {core}"
                ));
            }
        }
        if core < min {
            return Err(format!("it needs keygate >= {min}; this is keygate {core}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_compare() {
        assert_eq!(
            Version::parse("1.2.3").unwrap(),
            Version {
                major: 1,
                minor: 2,
                patch: 3
            }
        );
        assert_eq!(Version::parse("v0.1").unwrap().to_string(), "0.1.0");
        assert_eq!(
            Version::parse("2.0.0-rc.1+abc").unwrap().to_string(),
            "2.0.0"
        );
        assert!(Version::parse("1").is_err());
        assert!(Version::parse("1.x.0").is_err());
        assert!(Version::parse("1.2.3.4").is_err());
        assert!(Version::parse("").is_err());
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.9.9").unwrap());
    }

    #[test]
    fn ranges_include_both_ends() {
        let range = PluginCompatibility::between("0.1.0", "0.2.0");
        assert!(range.check("0.1.0").is_ok());
        assert!(range.check("0.2.0").is_ok());
        let above = range.check("0.3.0").unwrap_err();
        assert!(above.contains("0.1.0 to 0.2.0"), "{above}");
        let below = PluginCompatibility::from("0.2.0")
            .check("0.1.5")
            .unwrap_err();
        assert!(below.contains(">= 0.2.0"), "{below}");
        assert!(PluginCompatibility::from("0.1.0").check("9.0.0").is_ok());
        assert!(PluginCompatibility::between("0.3.0", "0.2.0")
            .check("0.2.5")
            .is_err());
        assert!(PluginCompatibility::from("latest").check("0.1.0").is_err());
    }
}

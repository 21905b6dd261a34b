//! Per-request behaviour directives, written after a colon in the model name and separated by
//! commas: `gpt-4o:error=429`, `mock:chunks=50,delay_ms=10`, `claude:timeout`.
//!
//! | directive       | effect                                                                  |
//! |-----------------|-------------------------------------------------------------------------|
//! | `error=NNN`     | answer with status NNN in the route's error envelope (429: `retry-after: 1`) |
//! | `timeout`       | sleep an hour before answering (the client is expected to time out)     |
//! | `chunks=N`      | N content pieces in the reply                                           |
//! | `delay_ms=N`    | pause N ms between streamed pieces                                      |
//! | `stall_after=N` | stream N pieces, then hang without ending                               |
//! | `cut_after=N`   | stream N pieces, then drop the connection abruptly                      |
//! | `garbage`       | 200 with an invalid JSON body, or a garbage SSE line                    |
//!
//! Unknown directives and unparsable values are ignored. The model echoed in replies is the part
//! before the colon.

/// Upper bound on `chunks=N`, so a typo cannot make the mock allocate without end.
const MAX_CHUNKS: usize = 100_000;

/// The directives of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    /// `error=NNN`: the status to answer with.
    pub error: Option<u16>,
    /// `timeout`: never answer (in practice: an hour).
    pub timeout: bool,
    /// `chunks=N`.
    pub chunks: Option<usize>,
    /// `delay_ms=N`.
    pub delay_ms: Option<u64>,
    /// `stall_after=N`.
    pub stall_after: Option<usize>,
    /// `cut_after=N`.
    pub cut_after: Option<usize>,
    /// `garbage`.
    pub garbage: bool,
}

impl Directives {
    /// Whether no directive is set.
    pub fn is_empty(&self) -> bool {
        *self == Directives::default()
    }
}

/// Splits a model string into the model to echo and its directives.
pub(crate) fn split(model: &str) -> (&str, Directives) {
    let Some((name, list)) = model.split_once(':') else {
        return (model, Directives::default());
    };
    let mut directives = Directives::default();
    for item in list.split(',').map(str::trim) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let value = value.trim();
        match key.trim() {
            "error" => {
                directives.error = value.parse().ok().filter(|s| (100..=599).contains(s));
            }
            "timeout" => directives.timeout = true,
            "garbage" => directives.garbage = true,
            "chunks" => {
                directives.chunks = value.parse().ok().map(|n: usize| n.min(MAX_CHUNKS));
            }
            "delay_ms" => directives.delay_ms = value.parse().ok(),
            "stall_after" => directives.stall_after = value.parse().ok(),
            "cut_after" => directives.cut_after = value.parse().ok(),
            _ => {}
        }
    }
    (name, directives)
}

/// The model to echo and the directives of a request: from the Azure `deployment` when given
/// (falling back to the body's model for directives), else from the body's `model`.
pub(crate) fn resolve<'a>(
    deployment: Option<&'a str>,
    body_model: Option<&'a str>,
) -> Option<(&'a str, Directives)> {
    let (model, mut directives) = split(deployment.or(body_model)?);
    if directives.is_empty() && deployment.is_some() {
        directives = body_model.map(|m| split(m).1).unwrap_or_default();
    }
    Some((model, directives))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_model_has_no_directives() {
        let (name, d) = split("gpt-4o-mini");
        assert_eq!(name, "gpt-4o-mini");
        assert!(d.is_empty());
    }

    #[test]
    fn parses_every_directive() {
        let (name, d) =
            split("mock:error=429,timeout,chunks=50,delay_ms=10,stall_after=2,cut_after=3,garbage");
        assert_eq!(name, "mock");
        assert_eq!(
            d,
            Directives {
                error: Some(429),
                timeout: true,
                chunks: Some(50),
                delay_ms: Some(10),
                stall_after: Some(2),
                cut_after: Some(3),
                garbage: true,
            }
        );
    }

    #[test]
    fn ignores_unknown_and_bad_values() {
        let (name, d) = split("claude: error=abc, frobnicate=1 ,chunks=9999999999");
        assert_eq!(name, "claude");
        assert_eq!(d.error, None);
        assert_eq!(d.chunks, Some(MAX_CHUNKS));
        assert!(!d.timeout);
        let (_, d) = split("m:error=42");
        assert_eq!(d.error, None);
    }

    #[test]
    fn azure_deployment_wins_but_body_directives_apply() {
        let (model, d) = resolve(Some("dep"), Some("gpt-4o:error=500")).unwrap();
        assert_eq!((model, d.error), ("dep", Some(500)));
        let (model, d) = resolve(Some("dep:error=429"), Some("gpt-4o:error=500")).unwrap();
        assert_eq!((model, d.error), ("dep", Some(429)));
        let (model, d) = resolve(None, Some("gpt-4o:chunks=2")).unwrap();
        assert_eq!((model, d.chunks), ("gpt-4o", Some(2)));
        assert!(resolve(None, None).is_none());
    }
}

//! The usage of a passed-through JSON answer, read straight off its bytes in the pass that also
//! checks the whole body is JSON ([`crate::json_scan`]): no tree is built.
//!
//! Reads what [`translate::openai_usage_object`] and [`translate::anthropic_usage_object`]
//! read from a parsed `usage`, and turns the counts into [`Usage`] with the same functions,
//! with the same leniency: a count that is not a whole, non-negative number is absent, and a
//! `usage` that is not an object is no usage.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use keygate_plugin_api::Wire;

use super::translate::{self, Usage};
use crate::json_scan::{self, NotJson};

/// The usage a passed-through answer reports in `wire`'s dialect (its top-level `usage`, the
/// last one if the name repeats, as a client's JSON parser reads it), or [`NotJson`].
pub fn answer_usage(body: &[u8], wire: Wire) -> Result<Option<Usage>, NotJson> {
    let Some(usage) = json_scan::top_member(body, "usage")? else {
        return Ok(None);
    };
    // A `usage` serde_json cannot read (a number out of range, say) is no usage.
    Ok(serde_json::from_slice::<Counts>(&body[usage])
        .ok()
        .and_then(|counts| counts.usage(wire)))
}

/// The counts of a `usage` object, under both dialects' names. Repeated members: the last wins.
#[derive(Default, Debug, PartialEq)]
struct Counts {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    /// `prompt_tokens_details.cached_tokens`.
    cached_tokens: Option<u64>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl Counts {
    /// The usage in `wire`'s dialect, if the counts make one.
    fn usage(&self, wire: Wire) -> Option<Usage> {
        match wire {
            Wire::OpenAi => translate::openai_usage_from(
                self.prompt_tokens,
                self.completion_tokens,
                self.cached_tokens,
            ),
            Wire::Anthropic => translate::anthropic_usage_from(
                self.input_tokens,
                self.output_tokens,
                self.cache_read_input_tokens,
                self.cache_creation_input_tokens,
            ),
        }
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    PromptTokens,
    CompletionTokens,
    PromptTokensDetails,
    CachedTokens,
    InputTokens,
    OutputTokens,
    CacheReadInputTokens,
    CacheCreationInputTokens,
    #[serde(other)]
    Other,
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjectOf(false))
    }
}

/// Reads a `usage` object (or, when `.0`, a `prompt_tokens_details` object: its
/// `cached_tokens` only); any other value is skipped and reads as no counts.
struct ObjectOf(bool);

impl<'de> Visitor<'de> for ObjectOf {
    type Value = Counts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Counts, A::Error> {
        let mut counts = Counts::default();
        while let Some(field) = map.next_key::<Field>()? {
            let slot = match (self.0, field) {
                (false, Field::PromptTokens) => &mut counts.prompt_tokens,
                (false, Field::CompletionTokens) => &mut counts.completion_tokens,
                (false, Field::InputTokens) => &mut counts.input_tokens,
                (false, Field::OutputTokens) => &mut counts.output_tokens,
                (false, Field::CacheReadInputTokens) => &mut counts.cache_read_input_tokens,
                (false, Field::CacheCreationInputTokens) => &mut counts.cache_creation_input_tokens,
                (true, Field::CachedTokens) => &mut counts.cached_tokens,
                (false, Field::PromptTokensDetails) => {
                    let details = map.next_value_seed(Seed(ObjectOf(true)))?;
                    counts.cached_tokens = details.cached_tokens;
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = map.next_value::<Count>()?.0;
        }
        Ok(counts)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Counts, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Counts::default())
    }

    fn visit_bool<E>(self, _: bool) -> Result<Counts, E> {
        Ok(Counts::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Counts, E> {
        Ok(Counts::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Counts, E> {
        Ok(Counts::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Counts, E> {
        Ok(Counts::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Counts, E> {
        Ok(Counts::default())
    }
    fn visit_unit<E>(self) -> Result<Counts, E> {
        Ok(Counts::default())
    }
}

/// [`ObjectOf`] as a seed, for a nested object.
struct Seed(ObjectOf);

impl<'de> de::DeserializeSeed<'de> for Seed {
    type Value = Counts;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Counts, D::Error> {
        deserializer.deserialize_any(self.0)
    }
}

/// A token count: a whole, non-negative number (`3` or `3.0`), or absent for anything else.
struct Count(Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, n: u64) -> Result<Count, E> {
                Ok(Count(Some(n)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(n).ok()))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Count, E> {
                Ok(Count(translate::whole_count(f)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Count, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    /// What the tree-based readers make of the same body.
    fn by_tree(body: &str, wire: Wire) -> Option<Usage> {
        let value: Value = serde_json::from_str(body).unwrap();
        match wire {
            Wire::OpenAi => translate::openai_usage(&value),
            Wire::Anthropic => translate::anthropic_usage(&value),
        }
    }

    #[test]
    fn counts_read_off_the_bytes_match_the_tree_readers() {
        for body in [
            r#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
            r#"{"usage":{"prompt_tokens":10,"completion_tokens":1,
                "prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0}}}"#,
            r#"{"usage":{"prompt_tokens":2,"prompt_tokens_details":{"cached_tokens":9}}}"#,
            r#"{"usage":{"prompt_tokens":3.0,"completion_tokens":-1}}"#,
            r#"{"usage":{"prompt_tokens":"3","completion_tokens":[1],"x":{"y":[{}]}}}"#,
            r#"{"usage":{"prompt_tokens":1,"prompt_tokens":5}}"#,
            r#"{"usage":{"prompt_tokens_details":null,"completion_tokens":2}}"#,
            r#"{"usage":{"input_tokens":5,"output_tokens":6,"cache_read_input_tokens":7,
                "cache_creation_input_tokens":8}}"#,
            r#"{"usage":{"output_tokens":2.5}}"#,
            r#"{"usage":null}"#,
            r#"{"usage":[1,2]}"#,
            r#"{"usage":"lots"}"#,
            r#"{"usage":7}"#,
            r#"{"choices":[{"message":{"usage":{"prompt_tokens":1}}}]}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":{"prompt_tokens":2}}"#,
            r#"{"usage":{"prompt_tokens":1},"usage":null}"#,
            r#"{"usa\u0067e":{"input_tokens":1,"output_tokens":2}}"#,
            r#"[{"usage":{"prompt_tokens":1}}]"#,
            "{}",
        ] {
            for wire in [Wire::OpenAi, Wire::Anthropic] {
                let read = answer_usage(body.as_bytes(), wire).unwrap();
                assert_eq!(read, by_tree(body, wire), "{wire:?} {body}");
            }
        }
    }

    #[test]
    fn a_usage_serde_json_cannot_read_is_no_usage() {
        let body = br#"{"usage":{"prompt_tokens":1e400,"completion_tokens":1}}"#;
        assert_eq!(answer_usage(body, Wire::OpenAi), Ok(None));
    }

    #[test]
    fn anything_but_json_is_refused() {
        for body in [
            "{\"usage\":",
            "not json",
            r#"{"a":1} trailing"#,
            r#"{"usage":{"a":}}"#,
        ] {
            assert_eq!(
                answer_usage(body.as_bytes(), Wire::OpenAi),
                Err(NotJson),
                "{body}"
            );
        }
    }
}

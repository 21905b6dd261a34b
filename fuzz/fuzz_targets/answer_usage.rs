//! The check of a passed-through JSON answer and the reading of its usage
//! (`keygate_core::providers::answer_usage`), against serde_json on arbitrary bytes.
//!
//! Invariants, in both dialects: no panic; what it accepts, serde_json accepts; what serde_json
//! accepts and is valid UTF-8, it accepts; and when serde_json also builds the body's tree, the
//! usage read off the bytes is the usage the tree readers find.

#![no_main]

use keygate_core::providers::translate::{anthropic_usage, openai_usage};
use keygate_core::providers::{answer_usage, Wire};
use libfuzzer_sys::fuzz_target;
use serde::de::IgnoredAny;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let serde_accepts = serde_json::from_slice::<IgnoredAny>(data).is_ok();
    let utf8 = std::str::from_utf8(data).is_ok();
    let tree = serde_json::from_slice::<Value>(data).ok();
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let read = answer_usage(data, wire);
        match read {
            Ok(_) => assert!(serde_accepts, "accepted what serde_json refuses"),
            Err(_) => assert!(!(serde_accepts && utf8), "refused valid JSON"),
        }
        if let (Ok(usage), Some(tree)) = (read, &tree) {
            let by_tree = match wire {
                Wire::OpenAi => openai_usage(tree),
                Wire::Anthropic => anthropic_usage(tree),
            };
            assert_eq!(usage, by_tree, "{wire:?}");
        }
    }
});

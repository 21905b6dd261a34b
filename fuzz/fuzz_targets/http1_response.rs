//! The upstream client's HTTP/1.1 response reader (head, then a content-length, chunked or
//! read-to-close body) over arbitrary bytes, as reads of different sizes would bring them.
//!
//! Invariants: no panic; the outcome (head, body, or the error) is the same whether the bytes
//! come one at a time, in pieces of the input's first byte, or all at once; a body read whole
//! under `content-length` has exactly that length.

#![no_main]

use keygate_plugin_api::read_response_in_pieces;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let outcomes = [1, usize::from(step), data.len()].map(|step| {
        read_response_in_pieces(data, step).map(|(parts, body)| (parts.status, parts.headers, body))
    });
    assert_eq!(outcomes[0], outcomes[1]);
    assert_eq!(outcomes[0], outcomes[2]);
    if let Ok((status, headers, body)) = &outcomes[0] {
        let length = headers.get("content-length").and_then(|v| v.to_str().ok());
        let chunked = headers.contains_key("transfer-encoding");
        if let (Some(length), false, true) = (length, chunked, !status.is_informational() && *status != 204 && *status != 304) {
            if let Ok(length) = length.parse::<usize>() {
                assert_eq!(body.len(), length);
            }
        }
    }
});

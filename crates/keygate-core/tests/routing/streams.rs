//! Streams: retried while the upstream has not answered with a success, never once the first
//! byte is on its way to the client.

use crate::{anthropic, openai, routed, setup, FIRST};

#[tokio::test]
async fn a_stream_that_breaks_after_its_first_bytes_is_not_retried() {
    let models = openai("cut", "cut-bad:cut_after=2", &format!(", weight: {FIRST}"))
        + &openai("cut", "cut-ok", "")
        + &anthropic(
            "cut-claude",
            "claude-cut:cut_after=2",
            &format!(", weight: {FIRST}, fallbacks: [cut]"),
        )
        + &anthropic("cut-claude", "claude-ok", "");
    let s = setup("", &models).await;
    for group in ["cut", "cut-claude"] {
        let response = s.chat(group, true).await;
        assert_eq!(response.status(), 200, "{group}");
        assert_eq!(routed(&response).1, "0");
        let text = response.text().await.unwrap();
        assert!(
            text.contains("\"content\":\""),
            "{group}: no content relayed:\n{text}"
        );
        assert!(
            text.contains("The upstream stream failed"),
            "{group}: the break was not reported:\n{text}"
        );
        assert!(!text.contains("[DONE]"), "{group}: {text}");
    }
    assert_eq!(s.hits("cut-bad:cut_after=2"), 1);
    assert_eq!(s.hits("claude-cut:cut_after=2"), 1);
    assert_eq!(
        s.hits("cut-ok") + s.hits("claude-ok"),
        0,
        "a started stream was retried"
    );
}

#[tokio::test]
async fn a_stream_refused_before_its_first_byte_is_retried() {
    let models = openai("s", "s-bad:error=503", &format!(", weight: {FIRST}"))
        + &openai("s", "s-ok", "")
        + &anthropic("s2", "claude-bad:error=529", &format!(", weight: {FIRST}"))
        + &anthropic("s2", "claude-ok", "");
    let s = setup("", &models).await;
    for (group, ok) in [("s", "s-ok"), ("s2", "claude-ok")] {
        let response = s.chat(group, true).await;
        assert_eq!(response.status(), 200, "{group}");
        assert_eq!(
            routed(&response),
            (format!("{group}#1"), "1".into(), "0".into())
        );
        let text = response.text().await.unwrap();
        assert!(text.trim_end().ends_with("data: [DONE]"), "{group}: {text}");
        assert!(!text.contains("failed"), "{group}: {text}");
        assert_eq!(s.hits(ok), 1);
    }
}

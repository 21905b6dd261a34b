//! Server-sent event streams: frames prepared up front, played back with the `delay_ms` pause
//! between content pieces, and the `stall_after` / `cut_after` failure modes.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use serde::Serialize;

use crate::directives::Directives;
use crate::state::MockState;

/// Pause before `cut_after` drops the connection, so the frames before it are flushed.
const CUT_FLUSH: Duration = Duration::from_millis(10);

/// A stream to play: `frames[first_piece..first_piece + pieces]` are the content pieces.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Every frame, in order.
    pub frames: Vec<Bytes>,
    /// Index of the first content piece.
    pub first_piece: usize,
    /// Number of content pieces.
    pub pieces: usize,
}

/// An SSE `data:` frame.
pub(crate) fn data(value: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(b"\n\n");
    buf.into()
}

/// An SSE frame with an `event:` name.
pub(crate) fn event(name: &str, value: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    let _ = serde_json::to_writer(&mut buf, value);
    buf.extend_from_slice(b"\n\n");
    buf.into()
}

/// A 200 event-stream response with a fixed body.
pub(crate) fn fixed(body: &'static str) -> Response {
    with_headers(Response::new(Body::from(body)))
}

/// Where playback is.
struct Cursor {
    frames: std::vec::IntoIter<Bytes>,
    index: usize,
    /// Indices of frames preceded by the `delay_ms` pause.
    delayed: std::ops::RangeInclusive<usize>,
    delay: Duration,
    stall_at: Option<usize>,
    cut_at: Option<usize>,
    state: MockState,
    done: bool,
    _open: crate::state::OpenStream,
}

/// A 200 event-stream response playing `plan`, shaped by the request's directives.
pub(crate) fn response(
    state: &MockState,
    plan: Plan,
    directives: &Directives,
    delay: Duration,
) -> Response {
    let end_of_pieces = plan.first_piece + plan.pieces;
    let at = |n: Option<usize>| n.map(|n| plan.first_piece + n.min(plan.pieces));
    let cursor = Cursor {
        frames: plan.frames.into_iter(),
        index: 0,
        delayed: (plan.first_piece + 1)..=end_of_pieces,
        delay,
        stall_at: at(directives.stall_after),
        cut_at: at(directives.cut_after),
        state: state.clone(),
        done: false,
        _open: state.stream_opened(),
    };
    let frames = stream::unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return None;
        }
        let i = cursor.index;
        if cursor.cut_at == Some(i) {
            // Let the frames so far reach the client before the connection goes.
            cursor.state.sleep(CUT_FLUSH).await;
            cursor.done = true;
            return Some((Err(abort("cut_after: connection dropped")), cursor));
        }
        if cursor.stall_at == Some(i) {
            cursor.state.shutdown_signal().await;
            cursor.done = true;
            return Some((Err(abort("stall_after: shutting down")), cursor));
        }
        if !cursor.delay.is_zero()
            && cursor.delayed.contains(&i)
            && !cursor.state.sleep(cursor.delay).await
        {
            cursor.done = true;
            return Some((Err(abort("shutting down")), cursor));
        }
        let frame = cursor.frames.next()?;
        cursor.index += 1;
        Some((Ok(frame), cursor))
    });
    with_headers(Response::new(Body::from_stream(frames)))
}

fn abort(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, message)
}

fn with_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MockConfig;
    use futures_util::StreamExt;

    fn plan() -> Plan {
        let frames = ["h", "p0", "p1", "p2", "t"].map(Bytes::from).to_vec();
        Plan {
            frames,
            first_piece: 1,
            pieces: 3,
        }
    }

    async fn play(directives: Directives) -> (Vec<Bytes>, bool) {
        let state = MockState::new(MockConfig::default());
        let response = response(&state, plan(), &directives, Duration::from_millis(1));
        let mut body = response.into_body().into_data_stream();
        let mut frames = Vec::new();
        while let Some(item) = body.next().await {
            match item {
                Ok(frame) => frames.push(frame),
                Err(_) => return (frames, false),
            }
        }
        (frames, true)
    }

    #[tokio::test]
    async fn plays_all_frames() {
        let (frames, complete) = play(Directives::default()).await;
        assert!(complete);
        assert_eq!(frames.concat(), b"hp0p1p2t");
    }

    #[tokio::test]
    async fn cut_after_aborts_after_n_pieces() {
        let directives = Directives {
            cut_after: Some(2),
            ..Directives::default()
        };
        let (frames, complete) = play(directives).await;
        assert!(!complete);
        assert_eq!(frames.concat(), b"hp0p1");
    }

    #[tokio::test]
    async fn cut_after_beyond_pieces_drops_the_tail() {
        let directives = Directives {
            cut_after: Some(10),
            ..Directives::default()
        };
        let (frames, complete) = play(directives).await;
        assert!(!complete);
        assert_eq!(frames.concat(), b"hp0p1p2");
    }

    #[test]
    fn frames_are_sse() {
        assert_eq!(
            &data(&serde_json::json!({"a": 1}))[..],
            b"data: {\"a\":1}\n\n"
        );
        assert_eq!(&event("ping", &1)[..], b"event: ping\ndata: 1\n\n");
    }
}

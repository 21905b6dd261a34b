//! An upstream body bounded by idleness: once the response headers are in, the model's `timeout`
//! also bounds every wait for the next body chunk. An upstream that stalls mid-body (a stream
//! that stops sending without ending) then ends with [`BackendError::Timeout`], which the relay
//! turns into the caller's error frame, and the upstream request is dropped; without it the
//! caller would wait forever. A stream that keeps sending is never cut, however long it lasts.
//!
//! The timer is not reset per chunk: a chunk only records when it arrived, and the timer, when
//! it fires, moves itself to the real deadline. A busy stream so costs one clock read per chunk.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use keygate_plugin_api::{BackendError, BackendResponse, BodyStream, ResponseBody};
use tokio::time::{Instant, Sleep};

/// The response with its streamed body (if any) bounded by `idle` between chunks.
pub fn bound(mut response: BackendResponse, idle: Duration) -> BackendResponse {
    if let ResponseBody::Stream(body) = response.body {
        response.body = ResponseBody::Stream(Box::pin(IdleTimeout::new(body, idle)));
    }
    response
}

/// A body stream that fails with [`BackendError::Timeout`] after `idle` without a chunk.
pub struct IdleTimeout {
    inner: BodyStream,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    done: bool,
}

impl IdleTimeout {
    /// Wraps `inner`; the first wait starts now.
    pub fn new(inner: BodyStream, idle: Duration) -> Self {
        let last = Instant::now();
        Self {
            inner,
            idle,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + idle)),
            done: false,
        }
    }
}

impl Stream for IdleTimeout {
    type Item = Result<Bytes, BackendError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(item)) => {
                this.last = Instant::now();
                return Poll::Ready(Some(item));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            match this.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let deadline = this.last + this.idle;
                    if Instant::now() >= deadline {
                        this.done = true;
                        // Drop the upstream body now: that cancels the upstream request.
                        this.inner = Box::pin(futures_util::stream::empty());
                        return Poll::Ready(Some(Err(BackendError::Timeout)));
                    }
                    this.timer.as_mut().reset(deadline);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn chunks(gaps_ms: &[u64]) -> BodyStream {
        let gaps = gaps_ms.to_vec();
        Box::pin(futures_util::stream::iter(gaps).then(|ms| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Bytes::from_static(b"x"))
        }))
    }

    #[tokio::test]
    async fn a_stream_that_keeps_sending_is_never_cut() {
        // 12 chunks 50 ms apart: 0.6 s in all, with a 200 ms idle bound.
        let mut s = IdleTimeout::new(chunks(&[50; 12]), Duration::from_millis(200));
        let mut n = 0;
        while let Some(item) = s.next().await {
            item.unwrap();
            n += 1;
        }
        assert_eq!(n, 12);
    }

    #[tokio::test]
    async fn a_stall_ends_with_a_timeout_then_nothing() {
        let stalled = chunks(&[10, 10]).chain(futures_util::stream::pending());
        let mut s = IdleTimeout::new(Box::pin(stalled), Duration::from_millis(100));
        assert!(s.next().await.unwrap().is_ok());
        assert!(s.next().await.unwrap().is_ok());
        let started = Instant::now();
        assert!(matches!(s.next().await, Some(Err(BackendError::Timeout))));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn full_bodies_are_left_alone() {
        let r = bound(
            BackendResponse::full(http::StatusCode::OK, "{}"),
            Duration::from_millis(1),
        );
        assert!(matches!(r.body, ResponseBody::Full(_)));
    }
}

//! Merging body chunks that are already waiting: when the upstream is faster than the caller
//! (a burst of stream events), what has arrived goes out in one write instead of one write per
//! event. Nothing ever waits for more data: a chunk is passed on as soon as no other is ready,
//! so latency is unchanged; errors and the end of the stream keep their place.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

/// Most bytes merged into one chunk.
const MAX_MERGE: usize = 64 * 1024;

type Item = Result<Bytes, keygate_plugin_api::BackendError>;

/// A byte stream whose ready chunks are merged.
pub struct Coalesce<S> {
    inner: S,
    /// An item met while merging, to be returned next (`None` inside: the end).
    held: Option<Option<Item>>,
    done: bool,
}

impl<S> Coalesce<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            held: None,
            done: false,
        }
    }
}

impl<S: Stream<Item = Item> + Unpin> Stream for Coalesce<S> {
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        if let Some(held) = this.held.take() {
            this.done = held.is_none();
            return Poll::Ready(held);
        }
        if this.done {
            return Poll::Ready(None);
        }
        let first = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => bytes,
            Poll::Ready(other) => {
                this.done = other.is_none();
                return Poll::Ready(other);
            }
        };
        let mut merged: Option<BytesMut> = None;
        let mut size = first.len();
        while size < MAX_MERGE {
            match Pin::new(&mut this.inner).poll_next(cx) {
                Poll::Pending => break,
                Poll::Ready(Some(Ok(more))) => {
                    size += more.len();
                    merged
                        .get_or_insert_with(|| BytesMut::from(&first[..]))
                        .extend_from_slice(&more);
                }
                Poll::Ready(other) => {
                    this.held = Some(other);
                    break;
                }
            }
        }
        Poll::Ready(Some(Ok(merged.map_or(first, BytesMut::freeze))))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn ready_chunks_merge_and_the_end_keeps_its_place() {
        let chunks: Vec<Item> = ["a", "b", "c"]
            .iter()
            .map(|s| Ok(Bytes::from(*s)))
            .collect();
        let mut stream = Coalesce::new(futures_util::stream::iter(chunks));
        assert_eq!(stream.next().await.unwrap().unwrap(), "abc");
        assert!(stream.next().await.is_none());
        assert!(stream.next().await.is_none());
    }

    #[tokio::test]
    async fn nothing_waits_for_a_chunk_that_is_not_there() {
        let chunks: Vec<Item> = vec![Ok(Bytes::from("one")), Ok(Bytes::from("two"))];
        let slow = futures_util::stream::iter(chunks).chain(futures_util::stream::pending());
        let mut stream = Coalesce::new(Box::pin(slow));
        let first = tokio::time::timeout(std::time::Duration::from_secs(1), stream.next()).await;
        assert_eq!(first.unwrap().unwrap().unwrap(), "onetwo");
    }
}

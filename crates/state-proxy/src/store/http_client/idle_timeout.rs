//! A bound on a streamed backend answer that does not count a slow reader.
//!
//! An HTTP client's read timeout (reqwest's `read_timeout`) measures the
//! time between two chunks even while nobody asks for the next one, so a
//! download passed on to a slow client downstream would be cut off
//! although the backend is fine. [`IdleTimeout`] only runs its clock while
//! the consumer is waiting for the backend.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;

use crate::error::{Error, Result};

/// A streamed body that fails with the error `stalled` builds when the
/// backend sends nothing for `timeout` while the consumer waits for it.
pub struct IdleTimeout<S, F> {
    inner: S,
    timeout: Duration,
    stalled: F,
    waiting: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set once the timeout fired: the stream has ended with that error.
    timed_out: bool,
}

impl<S, F: Fn(Duration) -> Error> IdleTimeout<S, F> {
    pub fn new(inner: S, timeout: Duration, stalled: F) -> Self {
        IdleTimeout {
            inner,
            timeout,
            stalled,
            waiting: None,
            timed_out: false,
        }
    }
}

impl<S, F> Stream for IdleTimeout<S, F>
where
    S: Stream<Item = Result<Bytes>> + Unpin,
    F: Fn(Duration) -> Error + Unpin,
{
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = Pin::new(&mut this.inner).poll_next(cx) {
            this.waiting = None;
            return Poll::Ready(item);
        }
        let timeout = this.timeout;
        let sleep = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.waiting = None;
                this.timed_out = true;
                Poll::Ready(Some(Err((this.stalled)(timeout))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use futures_util::StreamExt;

    use super::*;
    use crate::error::ErrorKind;
    use crate::error::kind_of;

    fn stalled(timeout: Duration) -> Error {
        Error::new(ErrorKind::Timeout, format!("nothing for {timeout:?}"))
    }

    #[tokio::test]
    async fn a_stream_that_stalls_midway_times_out() {
        let chunks = futures_util::stream::iter([Ok(Bytes::from_static(b"first"))])
            .chain(futures_util::stream::pending());
        let mut body = IdleTimeout::new(chunks.boxed(), Duration::from_millis(100), stalled);
        assert_eq!(body.next().await.unwrap().unwrap(), "first");
        let started = Instant::now();
        let outcome = body.next().await.unwrap();
        assert_eq!(kind_of(&outcome), Some(ErrorKind::Timeout), "{outcome:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_slow_reader_is_not_a_stalled_backend() {
        // Both chunks are there at once; the reader pauses longer than the
        // timeout between them, which must not count against the backend.
        let chunks = futures_util::stream::iter([
            Ok(Bytes::from_static(b"one")),
            Ok(Bytes::from_static(b"two")),
        ]);
        let mut body = IdleTimeout::new(chunks.boxed(), Duration::from_millis(50), stalled);
        assert_eq!(body.next().await.unwrap().unwrap(), "one");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(body.next().await.unwrap().unwrap(), "two");
        assert!(body.next().await.is_none());
    }
}

//! The pace a request body must keep: a client that sends its body too
//! slowly (a byte a second, or nothing at all) is cut off instead of
//! holding a connection, a task and perhaps a share of the memory budget
//! forever.
//!
//! The rule: counted from the first moment the body was waited for (for a
//! body that does not come with its head, about when the head was read),
//! the `n`-th byte of the body must have arrived by `timeout + n /
//! min_rate`. A body that never makes the proxy wait (none at all, or one
//! that came with its head) never reads the clock.
//! A body that falls behind fails with [`TooSlow`], answered 408 with the
//! connection closed.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// How fast a request body must arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyPace {
    /// Time allowed before the rate counts (and, at rate 0, for the whole
    /// body); zero: no pace at all.
    pub timeout: Duration,
    /// Bytes per second the body must average after that; 0 means no
    /// rate, only the timeout.
    pub min_rate: u64,
}

/// The error of a body that fell behind its pace.
#[derive(Debug)]
pub struct TooSlow(BodyPace);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the body arrived too slowly (allowed: {} s, then at least {} bytes/s)",
            self.0.timeout.as_secs_f64(),
            self.0.min_rate
        )
    }
}

impl std::error::Error for TooSlow {}

/// A body that must keep a [`BodyPace`].
pub struct PacedBody<B> {
    inner: B,
    pace: BodyPace,
    /// When the body was first waited for.
    started: Option<Instant>,
    received: u64,
    /// Armed only when the body is waited for.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> PacedBody<B> {
    pub fn new(inner: B, pace: BodyPace) -> Self {
        PacedBody {
            inner,
            pace,
            started: None,
            received: 0,
            timer: None,
        }
    }

    /// When the next byte is due.
    fn deadline(&mut self) -> Instant {
        let allowance = match self.pace.min_rate {
            0 => Duration::ZERO,
            rate => Duration::from_secs_f64(self.received as f64 / rate as f64),
        };
        *self.started.get_or_insert_with(Instant::now) + self.pace.timeout + allowance
    }
}

/// Errors of a paced body: the inner body's, or [`TooSlow`].
pub type PaceError = Box<dyn std::error::Error + Send + Sync>;

impl<B> http_body::Body for PacedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<PaceError>,
{
    type Data = Bytes;
    type Error = PaceError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, PaceError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                    this.received += data.map_or(0, |d| d.len() as u64);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            // A zero body timeout turns the pace off.
            Poll::Pending if this.pace.timeout.is_zero() => Poll::Pending,
            Poll::Pending => {
                let deadline = this.deadline();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                ready!(timer.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(TooSlow(this.pace)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test]
    async fn a_body_that_stops_is_cut_off() {
        let pace = BodyPace {
            timeout: Duration::from_millis(20),
            min_rate: 100_000,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let mut body = PacedBody::new(StreamBody::new(tokio_stream_from(rx)), pace);
        tx.send(Ok(Frame::data(Bytes::from(vec![0; 300]))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(body.received, 300);
        // Nothing more arrives: the body fails instead of waiting forever.
        let failed = body.frame().await.unwrap().unwrap_err();
        assert!(failed.is::<TooSlow>(), "{failed}");
        drop(tx);
    }

    #[tokio::test]
    async fn a_zero_timeout_sets_no_pace() {
        let pace = BodyPace {
            timeout: Duration::ZERO,
            min_rate: 1024,
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let mut body = PacedBody::new(StreamBody::new(tokio_stream_from(rx)), pace);
        let late = tokio::spawn(async move {
            // Late for any pace of 1 KiB/s: with one, the body would
            // have failed at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            tx.send(Ok(Frame::data(Bytes::from_static(b"late"))))
                .await
                .unwrap();
        });
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "late");
        late.await.unwrap();
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}

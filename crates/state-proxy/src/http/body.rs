//! Request and response bodies.
//!
//! [`RequestBody`] wraps any [`IncomingBody`]: hyper's `Incoming` on the
//! socket, a body built in memory when a test drives the application
//! directly. It remembers whether the client's body was read to its
//! end, so that after an early answer the connection is either drained
//! and kept alive, or closed; it is never left with unread bytes that
//! would be parsed as the next request.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;

use super::budget::{MemoryBudget, Share};
use super::pace::TooSlow;
use crate::error::{Error, ErrorKind, Result};
use crate::store::ByteStream;

/// Bytes of an unread body we are willing to read and throw away before
/// an early answer. Clients that send their whole body before reading
/// (Python's http.client does) see a broken pipe instead of the answer
/// when the connection is closed under them, so a refused body of
/// reasonable size is read to its end; above this, the answer goes out
/// and the connection is closed.
const DRAIN_MAX_BYTES: u64 = 16 << 20;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(5);

/// What a request body must be for the proxy to serve it: a body of
/// bytes whose errors can be told to the client.
pub trait IncomingBody:
    http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> IncomingBody for B where
    B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of the request being served.
pub struct RequestBody<'b, B> {
    incoming: Option<B>,
    progress: Arc<Progress>,
    /// Its share of the memory budget while it is held whole; given back
    /// when the request is answered.
    share: Share,
    budget: &'b MemoryBudget,
}

/// How far the body was read, shared with the stream it may be handed
/// over as.
struct Progress {
    finished: AtomicBool,
    /// Body bytes read so far (for the metrics).
    received: AtomicU64,
}

impl Progress {
    fn count(&self, data: &Bytes) {
        self.received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

impl<'b, B: IncomingBody> RequestBody<'b, B> {
    /// A body whose whole reads (`read_all`) take their share of `budget`.
    pub fn new(incoming: B, budget: &'b MemoryBudget) -> Self {
        let progress = Arc::new(Progress {
            finished: AtomicBool::new(incoming.is_end_stream()),
            received: AtomicU64::new(0),
        });
        RequestBody {
            incoming: Some(incoming),
            progress,
            share: Share::default(),
            budget,
        }
    }

    /// Body bytes read so far, by whoever read them.
    pub fn received(&self) -> u64 {
        self.progress.received.load(Ordering::Relaxed)
    }

    /// The announced length (`Content-Length`), if any.
    pub fn announced_len(&self) -> Option<u64> {
        self.incoming.as_ref().and_then(|b| b.size_hint().exact())
    }

    /// Takes the share of the memory budget a streamed write holds of
    /// this body (`at_most` bytes, or the announced length if smaller),
    /// before the body is handed over: once it streams, nothing may fail
    /// for want of memory.
    pub async fn reserve(&mut self, at_most: u64) -> Result<()> {
        let bytes = self.announced_len().map_or(at_most, |n| n.min(at_most));
        self.budget.grow(&mut self.share, bytes).await
    }

    /// Reads the whole body, refusing one larger than `limit` bytes; a
    /// body of one frame is returned without copying. The memory it
    /// takes is taken from the budget first: all of it when the length
    /// was announced, in doubling steps otherwise; the share is held
    /// until the request is answered.
    pub async fn read_all(&mut self, limit: u64) -> Result<Bytes> {
        let announced = self.announced_len();
        if let Some(announced) = announced {
            if announced > limit {
                return Err(too_large(limit));
            }
            self.budget.grow(&mut self.share, announced).await?;
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return Err(Error::internal("request body already taken"));
        };
        let mut first: Option<Bytes> = None;
        let mut rest: Option<BytesMut> = None;
        let mut total = 0u64;
        while let Some(frame) = incoming.frame().await {
            let Ok(data) = frame.map_err(body_error)?.into_data() else {
                continue; // trailers carry nothing we use
            };
            self.progress.count(&data);
            total += data.len() as u64;
            if total > limit {
                return Err(too_large(limit));
            }
            if total > self.share.bytes() {
                let step = total.max(self.share.bytes() * 2).max(GROW_MIN).min(limit);
                self.budget.grow(&mut self.share, step).await?;
            }
            match (&mut first, &mut rest) {
                (None, _) => first = Some(data),
                (Some(head), None) => {
                    let capacity = announced.unwrap_or(self.share.bytes()).max(total);
                    let mut joined = BytesMut::with_capacity(capacity as usize);
                    joined.extend_from_slice(head);
                    joined.extend_from_slice(&data);
                    rest = Some(joined);
                }
                (Some(_), Some(joined)) => {
                    if joined.capacity() < total as usize {
                        joined.reserve(self.share.bytes() as usize - joined.len());
                    }
                    joined.extend_from_slice(&data)
                }
            }
        }
        self.progress.finished.store(true, Ordering::Release);
        Ok(match (first, rest) {
            (_, Some(joined)) => joined.freeze(),
            (Some(only), None) => only,
            (None, None) => Bytes::new(),
        })
    }

    /// Hands the body over as a stream of chunks; bad framing surfaces as
    /// a `bad_request` error in the stream.
    pub fn into_stream(&mut self) -> ByteStream {
        let Some(incoming) = self.incoming.take() else {
            return futures_util::stream::once(async {
                Err(Error::internal("request body already taken"))
            })
            .boxed();
        };
        let progress = Arc::clone(&self.progress);
        futures_util::stream::unfold(Some(incoming), move |state| {
            let progress = Arc::clone(&progress);
            async move {
                let mut incoming = state?;
                loop {
                    match incoming.frame().await {
                        None => {
                            progress.finished.store(true, Ordering::Release);
                            return None;
                        }
                        Some(Err(e)) => return Some((Err(body_error(e)), None)),
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                progress.count(&data);
                                return Some((Ok(data), Some(incoming)));
                            }
                        }
                    }
                }
            }
        })
        .boxed()
    }

    /// Makes sure nothing of the body is left unread: drains a small
    /// remainder, and returns `false` when the connection must be closed
    /// instead.
    pub async fn finish(&mut self) -> bool {
        if self.progress.finished.load(Ordering::Acquire) {
            return true;
        }
        let Some(incoming) = self.incoming.as_mut() else {
            return false; // a stream was taken and dropped before its end
        };
        if incoming.size_hint().lower() > DRAIN_MAX_BYTES {
            return false;
        }
        let progress = &self.progress;
        let drain = async {
            let mut drained = 0u64;
            while let Some(frame) = incoming.frame().await {
                let Ok(frame) = frame else { return false };
                if let Some(data) = frame.data_ref() {
                    progress.count(data);
                    drained += data.len() as u64;
                    if drained > DRAIN_MAX_BYTES {
                        return false;
                    }
                }
            }
            true
        };
        tokio::time::timeout(DRAIN_MAX_TIME, drain)
            .await
            .unwrap_or(false)
    }
}

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("request body is larger than the limit of {limit} bytes"),
    )
}

/// The smallest step a chunked body's share grows by.
const GROW_MIN: u64 = 64 << 10;

/// A body too slow for its connection's pace ([`super::pace`]) is a 408;
/// any other failure to read it, a 400.
fn body_error(e: impl Into<BoxError>) -> Error {
    let e: BoxError = e.into();
    let kind = if e.is::<TooSlow>() {
        ErrorKind::RequestTimeout
    } else {
        ErrorKind::BadRequest
    };
    Error::new(kind, format!("cannot read the request body: {e}"))
}

/// A response body: nothing, bytes in memory, or a stream of known or
/// unknown length.
pub enum ResponseBody {
    Empty,
    Full(Option<Bytes>),
    /// Bytes held for this answer alone, with their share of the memory
    /// budget. The body ends only on the poll after its data, which the
    /// connection makes once it has written what it holds, so the share
    /// lasts until the bytes left the process (or the answer was dropped).
    Counted {
        bytes: Option<Bytes>,
        _share: Share,
    },
    Stream {
        stream: ByteStream,
        size: Option<u64>,
    },
}

impl ResponseBody {
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ResponseBody::Full(Some(bytes.into()))
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.get_mut() {
            ResponseBody::Empty => Poll::Ready(None),
            ResponseBody::Full(bytes) | ResponseBody::Counted { bytes, .. } => {
                Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b))))
            }
            ResponseBody::Stream { stream, .. } => stream
                .poll_next_unpin(cx)
                .map(|chunk| chunk.map(|result| result.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Empty => true,
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Counted { .. } | ResponseBody::Stream { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Empty => SizeHint::with_exact(0),
            ResponseBody::Full(bytes) | ResponseBody::Counted { bytes, .. } => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Stream {
                size: Some(size), ..
            } => SizeHint::with_exact(*size),
            ResponseBody::Stream { size: None, .. } => SizeHint::default(),
        }
    }
}

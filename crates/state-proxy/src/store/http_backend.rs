//! What the stores that speak HTTP to their backend (`s3`, `gcs`) share:
//! which answers are worth retrying, and how a failure below HTTP becomes
//! an [`Error`] whose message names the backend and the call.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::StatusCode;

use tokio::time::Instant;

use super::idle_timeout::IdleTimeout;
use super::{Body, Object, ObjectMeta, Version};
use crate::error::{Error, ErrorKind, Result};

/// Answers S3 and GCS document as transient: worth another attempt when
/// repeating the request cannot change the outcome.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A call to `backend` that got no answer within the backend timeout.
pub fn timed_out(backend: &str, what: &str, timeout: Duration) -> Error {
    Error::new(
        ErrorKind::Timeout,
        format!(
            "{backend} {what}: no answer within {:.1} s (STATE_BACKEND_TIMEOUT_SECS)",
            timeout.as_secs_f64()
        ),
    )
}

/// A failure below HTTP: the backend unreachable, a connection cut, a
/// timeout, an answer that could not be decoded.
pub fn transport_error(
    backend: &str,
    error: &reqwest::Error,
    what: &str,
    timeout: Duration,
) -> Error {
    if error.is_timeout() {
        return timed_out(backend, what, timeout);
    }
    // The chain carries the useful part ("Connection refused", ...).
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_decode() {
        Error::new(ErrorKind::Internal, format!("{backend} {what}: {message}"))
    } else {
        Error::new(
            ErrorKind::Unavailable,
            format!("{backend} {what}: unreachable: {message}"),
        )
    }
}

/// Reads a whole answer body within the call's deadline.
pub async fn whole_body(
    backend: &str,
    response: reqwest::Response,
    deadline: Instant,
    what: &str,
    timeout: Duration,
) -> Result<Bytes> {
    match tokio::time::timeout_at(deadline, response.bytes()).await {
        Err(_) => Err(timed_out(backend, what, timeout)),
        Ok(Err(e)) => Err(transport_error(backend, &e, what, timeout)),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// The object a successful download answered with, at `version`: sized
/// answers are streamed (buffered modes collect them, passthrough passes
/// them on as they arrive); an answer without a length is read whole
/// within the deadline.
pub async fn downloaded_object(
    backend: &'static str,
    response: reqwest::Response,
    version: Version,
    deadline: Instant,
    timeout: Duration,
) -> Result<Object> {
    match response.content_length() {
        Some(size) => Ok(Object {
            meta: ObjectMeta { size, version },
            body: Body::Stream {
                stream: download_stream(backend, response, timeout),
                size: Some(size),
            },
        }),
        None => {
            let data = whole_body(backend, response, deadline, "download", timeout).await?;
            Ok(Object {
                meta: ObjectMeta {
                    size: data.len() as u64,
                    version,
                },
                body: Body::Full(data),
            })
        }
    }
}

/// The body of a download, passed on as it arrives: a failure midway is a
/// transport error, a backend that stops sending for the backend timeout
/// while the reader waits is a timeout (a slow reader is not).
pub fn download_stream(
    backend: &'static str,
    response: reqwest::Response,
    timeout: Duration,
) -> BoxStream<'static, Result<Bytes>> {
    let chunks = response
        .bytes_stream()
        .map_err(move |e| transport_error(backend, &e, "download", timeout))
        .boxed();
    IdleTimeout::new(chunks, timeout, move |t| timed_out(backend, "download", t)).boxed()
}

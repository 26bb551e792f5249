//! What the stores that speak HTTP to their backend (`s3`, `gcs`) share:
//! which answers are worth retrying, and how a failure below HTTP becomes
//! an [`Error`] whose message names the backend and the call.

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use http::StatusCode;

use super::idle_timeout::IdleTimeout;
use crate::error::{Error, Result};

/// Answers S3 and GCS document as transient: worth another attempt when
/// repeating the request cannot change the outcome.
pub fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A call to `backend` that got no answer within the backend timeout.
pub fn timed_out(backend: &str, what: &str, timeout: Duration) -> Error {
    Error::Timeout(format!(
        "{backend} {what}: no answer within {:.1} s (STATE_BACKEND_TIMEOUT_SECS)",
        timeout.as_secs_f64()
    ))
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
        Error::Internal(format!("{backend} {what}: {message}"))
    } else {
        Error::Unavailable(format!("{backend} {what}: unreachable: {message}"))
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

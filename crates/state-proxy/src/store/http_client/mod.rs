//! One HTTP client for the stores that speak HTTP to their backend (`s3`,
//! `gcs`), the way `object_store`'s client module serves every cloud.
//! The stores keep only what differs: URLs, how a request is authorised
//! ([`Authorize`]: SigV4 or a bearer token) and how the backend words its
//! errors ([`Dialect`]).
//!
//! - [`Call`]: one request, with everything needed to send it again;
//! - [`HttpClient::send`]: the one send loop, with the retry rule and the
//!   deadline;
//! - `failure`: an unsuccessful answer as an [`Error`], through one status
//!   table;
//! - `download`: a successful download as an [`Object`](super::Object),
//!   streamed with an idle timeout;
//! - `store::listing::follow_pages`: a paged listing followed to its end.
//!
//! Retries: a request that never reached the backend (the connection was
//! refused) is sent again whatever it is; one that did reach it only when
//! [`Retry::Idempotent`] says repeating it cannot change the outcome and
//! the backend asked for it (408, 429, 5xx). A conditional write is never
//! sent again once it may have reached the backend: one that succeeded but
//! whose answer was lost would come back 412, and a compare-and-swap
//! client would apply its change twice. A streamed body is sent once.
//! Every attempt and pause fits in one deadline, the backend timeout.

mod download;
mod failure;
#[cfg(test)]
pub(crate) mod fake;
mod idle_timeout;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Response;
use tokio::time::Instant;

pub(crate) use self::failure::{BackendError, excerpt};
use super::Condition;
use crate::error::{Error, ErrorKind, Result};

/// Everything but RFC 3986's unreserved characters is escaped: how SigV4
/// wants query values and object names, and how GCS wants a name as one
/// path segment.
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same, keeping `/` between the segments of a path.
pub(crate) const UNRESERVED_PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Attempts of a retryable request, the first included.
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Slices of a large body handed to the connection one at a time.
const SLICE: usize = 64 << 10;

/// Whether a request may be sent again after it reached the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only if it never reached the backend.
    UnlessSent,
    /// Also when the backend answers 408, 429 or 5xx.
    Idempotent,
}

impl Retry {
    /// A write under `condition`: the same bytes written again
    /// unconditionally change nothing; a conditional write is never
    /// repeated once sent.
    pub fn for_write(condition: &Condition) -> Retry {
        match condition {
            Condition::None => Retry::Idempotent,
            _ => Retry::UnlessSent,
        }
    }
}

/// One request to send.
pub(crate) struct Call {
    pub method: Method,
    /// With its query, already encoded.
    pub url: String,
    pub headers: HeaderMap,
    body: CallBody,
}

enum CallBody {
    /// A whole body, in parts sent one after the other (framing around
    /// content, without joining them); sent again as it is.
    Whole(Vec<Bytes>),
    /// A streamed body: sent once, so the call is never repeated.
    Once(Option<reqwest::Body>),
}

impl Call {
    pub fn new(method: Method, url: String) -> Call {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            body: CallBody::Whole(Vec::new()),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Result<Call> {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::bad_request(format!("invalid value for header {name}: {value:?}"))
        })?;
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    pub fn body(self, body: Bytes) -> Call {
        self.body_parts(vec![body])
    }

    /// A whole body made of `parts`, sent in that order.
    pub fn body_parts(mut self, parts: Vec<Bytes>) -> Call {
        self.body = CallBody::Whole(parts);
        self
    }

    /// A body streamed as it arrives: the call is sent once.
    pub fn stream(mut self, body: reqwest::Body) -> Call {
        self.body = CallBody::Once(Some(body));
        self
    }

    fn resendable(&self) -> bool {
        matches!(self.body, CallBody::Whole(_))
    }
}

/// How a backend's requests are authorised.
#[async_trait]
pub(crate) trait Authorize: Send + Sync {
    /// Adds the credentials of one attempt to its headers; called afresh
    /// for every attempt (a signature carries the time). `Err` stops the
    /// call: credentials that cannot be had now will not come in a few
    /// milliseconds.
    async fn authorize(&self, method: &Method, url: &str, headers: &mut HeaderMap) -> Result<()>;
}

/// How a backend words its failures.
pub(crate) trait Dialect: Send + Sync {
    /// The error code and message of an error body; an empty code when
    /// the body is not one of the backend's error documents.
    fn decode_error(&self, body: &[u8]) -> BackendError;

    /// The kind a failure stands for when the backend's code (or an
    /// unusual status) says more than the status table, with a hint for
    /// the message (which setting to check). `None`: the status decides.
    fn classify(&self, status: StatusCode, code: &str) -> Option<(ErrorKind, Option<String>)>;
}

/// The HTTP side of a store: one connection pool, the backend timeout,
/// and the backend's hooks.
pub(crate) struct HttpClient {
    http: reqwest::Client,
    backend: Backend,
    authorize: Arc<dyn Authorize>,
    dialect: Box<dyn Dialect>,
}

/// A backend's name in messages and its timeout: what building an error
/// needs, small enough to be copied into a download that outlives its
/// call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Backend {
    /// `S3`, `GCS`.
    pub name: &'static str,
    pub timeout: Duration,
}

impl Backend {
    /// A call that got no answer within the backend timeout.
    pub fn timed_out(self, what: &str) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "{} {what}: no answer within {:.1} s (STATE_BACKEND_TIMEOUT_SECS)",
                self.name,
                self.timeout.as_secs_f64()
            ),
        )
    }

    /// A failure below HTTP: the backend unreachable, a connection cut, a
    /// timeout, an answer that could not be decoded.
    fn transport_error(self, error: reqwest::Error, what: &str) -> Error {
        if error.is_timeout() {
            return self.timed_out(what);
        }
        let (kind, context) = if error.is_decode() {
            (ErrorKind::Internal, format!("{} {what}", self.name))
        } else {
            (
                ErrorKind::Unavailable,
                format!("{} {what}: unreachable", self.name),
            )
        };
        // The source chain carries the useful part ("Connection refused").
        Error::new(kind, context).with_source(error)
    }
}

enum Attempt {
    /// The request could not be authorised; it was not sent.
    Refused(Error),
    Transport(reqwest::Error),
}

impl HttpClient {
    pub fn new(
        backend: Backend,
        authorize: Arc<dyn Authorize>,
        dialect: Box<dyn Dialect>,
    ) -> Result<HttpClient> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("asya-state-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(backend.timeout)
            // No read timeout here: reqwest's counts the time between two
            // chunks even while the consumer is not reading, which would
            // cut off a slow client's download. Whole answers are bounded
            // by the deadline of `send`, streamed ones by `idle_timeout`.
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Internal, "cannot build the HTTP client").with_source(e)
            })?;
        Ok(HttpClient {
            http,
            backend,
            authorize,
            dialect,
        })
    }

    /// A deadline for one call, the backend timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.backend.timeout
    }

    /// A call that got no answer within the backend timeout.
    pub fn timed_out(&self, what: &str) -> Error {
        self.backend.timed_out(what)
    }

    fn transport_error(&self, error: reqwest::Error, what: &str) -> Error {
        self.backend.transport_error(error, what)
    }

    /// Sends a call, retried as `retry` allows, within `deadline`. Any
    /// answer the backend gives is returned (the caller decides what a
    /// 404 or a 412 means); only transport failures, credentials and the
    /// deadline are errors.
    pub async fn send(
        &self,
        mut call: Call,
        retry: Retry,
        deadline: Instant,
        what: &str,
    ) -> Result<Response> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS || !call.resendable();
            let outcome = tokio::time::timeout_at(deadline, self.attempt(&mut call)).await;
            let last_answer = match outcome {
                Err(_) => return Err(self.timed_out(what)),
                Ok(Err(Attempt::Refused(error))) => return Err(error),
                Ok(Err(Attempt::Transport(error))) => {
                    if last || !error.is_connect() {
                        return Err(self.transport_error(error, what));
                    }
                    tracing::debug!(backend = self.backend.name, what, attempt, error = %error, "unreachable, retrying");
                    Err(error)
                }
                Ok(Ok(response)) => {
                    if last || retry != Retry::Idempotent || !retryable(response.status()) {
                        return Ok(response);
                    }
                    tracing::debug!(backend = self.backend.name, what, attempt, status = %response.status(), "retrying");
                    Ok(response)
                }
            };
            // No time left to wait and try again: the last outcome stands.
            if Instant::now() + backoff >= deadline {
                return last_answer.map_err(|e| self.transport_error(e, what));
            }
            drop(last_answer);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        unreachable!("the last attempt always returns")
    }

    /// Authorises (afresh) and sends once.
    async fn attempt(&self, call: &mut Call) -> Result<Response, Attempt> {
        let mut headers = call.headers.clone();
        self.authorize
            .authorize(&call.method, &call.url, &mut headers)
            .await
            .map_err(Attempt::Refused)?;
        let mut request = self
            .http
            .request(call.method.clone(), &call.url)
            .headers(headers);
        match &mut call.body {
            CallBody::Whole(parts) => {
                let length: usize = parts.iter().map(Bytes::len).sum();
                // S3 wants the length of every upload, even an empty one.
                if length > 0 || matches!(call.method, Method::PUT | Method::POST) {
                    request = request
                        .header(http::header::CONTENT_LENGTH, length)
                        .body(request_body(parts, length));
                }
            }
            CallBody::Once(body) => {
                if let Some(body) = body.take() {
                    request = request.body(body);
                }
            }
        }
        request.send().await.map_err(Attempt::Transport)
    }

    /// Sends a call and keeps only a successful answer: any other becomes
    /// the error it stands for, `missing` saying what a 404 means here
    /// (given the backend's error code and the message).
    pub async fn send_ok(
        &self,
        call: Call,
        retry: Retry,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Result<Response> {
        let response = self.send(call, retry, deadline, what).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.failure(response, deadline, what, missing).await)
        }
    }

    /// Reads a whole answer body within the call's deadline.
    pub async fn body(&self, response: Response, deadline: Instant, what: &str) -> Result<Bytes> {
        match tokio::time::timeout_at(deadline, response.bytes()).await {
            Err(_) => Err(self.timed_out(what)),
            Ok(Err(e)) => Err(self.transport_error(e, what)),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }

    /// A successful answer read by `parse`; one it cannot read is an
    /// internal error quoting the answer.
    pub fn decoded<T, E: std::fmt::Display>(
        &self,
        body: &[u8],
        what: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<T> {
        parse(body).map_err(|e| {
            Error::internal(format!(
                "{} {what}: unexpected answer ({e}): {}",
                self.backend.name,
                failure::excerpt(body)
            ))
        })
    }
}

/// Answers S3 and GCS document as transient: worth another attempt when
/// repeating the request cannot change the outcome.
fn retryable(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// A whole request body that the HTTP client does not copy: a small one
/// in one piece, a large one as a stream of slices of the same buffers,
/// since the connection may otherwise flatten all of it into its write
/// buffer, doubling the memory of every part in flight.
fn request_body(parts: &[Bytes], length: usize) -> reqwest::Body {
    match parts {
        [] => reqwest::Body::from(Bytes::new()),
        [only] if length <= SLICE => reqwest::Body::from(only.clone()),
        _ if length <= SLICE => {
            let mut joined = BytesMut::with_capacity(length);
            parts.iter().for_each(|part| joined.extend_from_slice(part));
            reqwest::Body::from(joined.freeze())
        }
        _ => {
            let slices: Vec<Bytes> = parts
                .iter()
                .flat_map(|part| {
                    (0..part.len())
                        .step_by(SLICE)
                        .map(move |start| part.slice(start..(start + SLICE).min(part.len())))
                })
                .collect();
            reqwest::Body::wrap_stream(futures_util::stream::iter(
                slices.into_iter().map(Ok::<_, std::io::Error>),
            ))
        }
    }
}

/// `url` with `query` appended, each value escaped (the way SigV4
/// canonicalizes it, which every backend accepts).
pub(crate) fn with_query(mut url: String, query: &[(&str, &str)]) -> String {
    for (index, (param, value)) in query.iter().enumerate() {
        url.push(if index == 0 { '?' } else { '&' });
        url.push_str(param);
        url.push('=');
        url.extend(utf8_percent_encode(value, UNRESERVED));
    }
    url
}

/// A header value as text, when present and readable.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

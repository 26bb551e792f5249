//! The slice of the GCS JSON API the store uses, over `reqwest`: URLs,
//! one request with deadline and retries, and GCS answers as [`Error`]s.
//!
//! Retries: a request that never reached GCS (connection refused or
//! reset while connecting) is retried whatever it is; a request that did
//! reach it is retried only when repeating it cannot change the outcome
//! (reads, listings, setting the same attribute again) and GCS asked for
//! it (429, 5xx). Uploads and deletes are never repeated once sent: a
//! conditional write that succeeded but whose answer was lost would come
//! back 412, and a compare-and-swap client would apply its change twice.
//! Every attempt and pause fits in one deadline, the backend timeout.

use std::time::Duration;

use bytes::Bytes;
use percent_encoding::utf8_percent_encode;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use tokio::time::Instant;

use super::auth::Auth;
use super::sign::COMPONENT;
use crate::error::{Error, ErrorKind, Result};
use crate::store::http_backend::{self, retryable};

/// Attempts of a retryable request, the first included.
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest backend message quoted in an error.
const MESSAGE_LIMIT: usize = 300;

/// Whether a request may be sent again after it reached GCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only if it never reached GCS.
    UnlessSent,
    /// Also when GCS answers 429 or 5xx.
    Idempotent,
}

/// The HTTP side of the store.
pub(crate) struct Api {
    http: reqwest::Client,
    /// `https://storage.googleapis.com` or the emulator's address.
    pub base: String,
    pub bucket: String,
    pub auth: Auth,
    pub timeout: Duration,
}

impl Api {
    pub fn new(base: String, bucket: String, auth: Auth, timeout: Duration) -> Result<Api> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("asya-state-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeout)
            // No read timeout here: reqwest's counts the time between two
            // chunks even while the consumer is not reading, which would
            // cut off a slow client's download. Whole answers are bounded
            // by the deadline of `send`, streamed ones by `store::idle_timeout`.
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Internal,
                    format!("cannot build the HTTP client: {e}"),
                )
            })?;
        Ok(Api {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bucket,
            auth,
            timeout,
        })
    }

    /// `…/storage/v1/b/BUCKET/o/NAME`, the name escaped as one segment.
    pub fn object_url(&self, name: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}",
            self.base,
            utf8_percent_encode(&self.bucket, COMPONENT),
            utf8_percent_encode(name, COMPONENT)
        )
    }

    /// `…/storage/v1/b/BUCKET/o`, for listings.
    pub fn objects_url(&self) -> String {
        format!(
            "{}/storage/v1/b/{}/o",
            self.base,
            utf8_percent_encode(&self.bucket, COMPONENT)
        )
    }

    /// `…/upload/storage/v1/b/BUCKET/o`, for multipart uploads.
    pub fn upload_url(&self) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o",
            self.base,
            utf8_percent_encode(&self.bucket, COMPONENT)
        )
    }

    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// A deadline for one call, the backend timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Sends a request, retried as `retry` allows, within `deadline`.
    /// Any answer GCS gives is returned (the caller decides what a 404 or
    /// a 412 means); only transport failures and the deadline are errors.
    pub async fn send(
        &self,
        request: RequestBuilder,
        retry: Retry,
        deadline: Instant,
        what: &str,
    ) -> Result<Response> {
        let mut pending = request;
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1.. {
            // Keep a copy for another attempt while one is allowed; a
            // streamed body cannot be copied, so it is sent once.
            let (this, spare) = match pending.try_clone() {
                Some(copy) if attempt < ATTEMPTS => (copy, Some(pending)),
                _ => (pending, None),
            };
            let outcome = tokio::time::timeout_at(deadline, self.attempt(this)).await;
            let last_answer = match outcome {
                Err(_) => return Err(timed_out(what, self.timeout)),
                Ok(Err(Attempt::Auth(error))) => return Err(error),
                Ok(Err(Attempt::Transport(error))) => {
                    if spare.is_none() || !error.is_connect() {
                        return Err(transport_error(&error, what, self.timeout));
                    }
                    tracing::debug!(what, attempt, error = %error, "GCS unreachable, retrying");
                    Err(error)
                }
                Ok(Ok(response)) => {
                    if spare.is_none()
                        || retry != Retry::Idempotent
                        || !retryable(response.status())
                    {
                        return Ok(response);
                    }
                    tracing::debug!(what, attempt, status = %response.status(), "retrying");
                    Ok(response)
                }
            };
            // No time left to wait and try again: the last outcome stands.
            if Instant::now() + backoff >= deadline {
                return last_answer.map_err(|e| transport_error(&e, what, self.timeout));
            }
            drop(last_answer);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            pending = spare.expect("a retry keeps a copy of the request");
        }
        unreachable!("the attempts never run out before returning")
    }

    async fn attempt(&self, request: RequestBuilder) -> Result<Response, Attempt> {
        let request = match self.auth.bearer().await.map_err(Attempt::Auth)? {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.map_err(Attempt::Transport)
    }

    /// Reads a whole answer body within the deadline.
    pub async fn body(&self, response: Response, deadline: Instant, what: &str) -> Result<Bytes> {
        http_backend::whole_body("GCS", response, deadline, what, self.timeout).await
    }

    /// Reads a JSON answer of a successful call.
    pub async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
    ) -> Result<T> {
        let body = self.body(response, deadline, what).await?;
        serde_json::from_slice(&body).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("GCS {what}: unexpected answer ({e}): {}", excerpt(&body)),
            )
        })
    }

    /// Sends a call and keeps only a successful answer: any other becomes
    /// the error it stands for, `missing` being what a 404 means here.
    pub async fn send_ok(
        &self,
        request: RequestBuilder,
        retry: Retry,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(String) -> Error,
    ) -> Result<Response> {
        let response = self.send(request, retry, deadline, what).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(self.failure(response, deadline, what, missing).await)
        }
    }

    /// Turns an unsuccessful answer into an error: `missing` is what a 404
    /// means for this call (a missing key, a missing bucket...).
    pub async fn failure(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(String) -> Error,
    ) -> Error {
        let status = response.status();
        let headers = response.headers().clone();
        // The message is a courtesy: a body that does not come in time is
        // left out rather than turning a clear status into a timeout.
        let message = match self.body(response, deadline, what).await {
            Ok(body) => backend_message(&body),
            Err(_) => String::new(),
        };
        status_error(status, &headers, &format!("GCS {what}"), &message, missing)
    }
}

enum Attempt {
    Auth(Error),
    Transport(reqwest::Error),
}

pub(crate) fn timed_out(what: &str, timeout: Duration) -> Error {
    http_backend::timed_out("GCS", what, timeout)
}

/// A failure below HTTP: GCS unreachable, a connection cut, a timeout.
pub(crate) fn transport_error(error: &reqwest::Error, what: &str, timeout: Duration) -> Error {
    http_backend::transport_error("GCS", error, what, timeout)
}

/// The error a GCS status stands for.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    what: &str,
    message: &str,
    missing: impl FnOnce(String) -> Error,
) -> Error {
    let text = if message.is_empty() {
        format!("{what}: {status}")
    } else {
        format!("{what}: {status}: {message}")
    };
    match status.as_u16() {
        400 => Error::new(ErrorKind::BadRequest, text),
        401 | 403 => Error::new(ErrorKind::PermissionDenied, text),
        404 => missing(text),
        408 | 504 => Error::new(ErrorKind::Timeout, text),
        409 => Error::new(ErrorKind::KeyConflict, text),
        412 => Error::new(ErrorKind::PreconditionFailed, text),
        413 => Error::new(ErrorKind::PayloadTooLarge, text),
        429 | 500 | 502 | 503 => {
            let retry_after = headers
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok());
            match retry_after {
                Some(seconds) => Error::new(
                    ErrorKind::Unavailable,
                    format!("{text} (retry after {seconds} s)"),
                ),
                None => Error::new(ErrorKind::Unavailable, text),
            }
        }
        _ => Error::new(ErrorKind::Internal, text),
    }
}

/// The message of a GCS error body: `{"error": {"message": ...}}` in JSON,
/// plain text elsewhere (the emulator's media 404s).
fn backend_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        message: String,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope.error.message,
        Err(_) => excerpt(body),
    }
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(MESSAGE_LIMIT) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A header value as text, when present and readable.
pub(crate) fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|value: &HeaderValue| value.to_str().ok())
}

//! The slice of the S3 REST API the store uses, over `reqwest`: URLs,
//! SigV4 signing (object_store's [`AwsAuthorizer`] with its credential
//! chain), one request with deadline and retries, and S3 answers as
//! [`Error`]s.
//!
//! Retries: a request that never reached S3 (connection refused) is
//! retried whatever it is; one that did reach it is retried only when
//! repeating it cannot change the outcome (reads, listings, unconditional
//! writes of the same bytes, parts, aborts) and S3 asked for it (408,
//! 429, 5xx such as `503 SlowDown`). Conditional writes and deletes are
//! never repeated once sent: a conditional write that succeeded but whose
//! answer was lost would come back 412, and a compare-and-swap client
//! would apply its change twice. Every attempt and pause fits in one
//! deadline, the backend timeout.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{HttpRequest, HttpRequestBody};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Response;
use serde::Deserialize;
use tokio::time::Instant;

use crate::error::{Error, ErrorKind, Result};
use crate::store::http_backend::{self, retryable};

/// Attempts of a retryable request, the first included.
const ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled for each one after.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// Longest backend message quoted in an error.
const MESSAGE_LIMIT: usize = 300;

/// Everything but RFC 3986's unreserved characters: how SigV4 wants
/// query values and object names encoded.
const STRICT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The same, keeping `/` between the segments of an object name.
const OBJECT_PATH: &AsciiSet = &STRICT.remove(b'/');

/// Whether a request may be sent again after it reached S3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Only if it never reached S3.
    UnlessSent,
    /// Also when S3 answers 408, 429 or 5xx.
    Idempotent,
}

/// One request to send: everything needed to sign and send it again.
pub(crate) struct Call {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    /// Always whole: parts are bounded, and a whole body can be re-sent.
    pub body: Bytes,
}

impl Call {
    pub fn new(method: Method, url: String) -> Call {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Result<Call> {
        let value = HeaderValue::from_str(value).map_err(|_| {
            Error::bad_request(format!("invalid value for header {name}: {value:?}"))
        })?;
        self.headers.insert(HeaderName::from_static(name), value);
        Ok(self)
    }

    pub fn body(mut self, body: Bytes) -> Call {
        self.body = body;
        self
    }
}

/// The HTTP side of the store.
pub(crate) struct Api {
    http: reqwest::Client,
    /// `{endpoint}/{bucket}` (path style, emulators) or
    /// `https://{bucket}.s3.{region}.amazonaws.com` (virtual hosted).
    root: String,
    pub bucket: String,
    pub region: String,
    credentials: AwsCredentialProvider,
    pub timeout: Duration,
}

impl Api {
    pub fn new(
        endpoint: Option<&str>,
        bucket: String,
        region: String,
        credentials: AwsCredentialProvider,
        timeout: Duration,
    ) -> Result<Api> {
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
        let root = match endpoint {
            Some(endpoint) => format!(
                "{}/{}",
                endpoint.trim_end_matches('/'),
                utf8_percent_encode(&bucket, STRICT)
            ),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        Ok(Api {
            http,
            root,
            bucket,
            region,
            credentials,
            timeout,
        })
    }

    /// The URL of an object, its name encoded segment by segment.
    pub fn object_url(&self, name: &str) -> String {
        format!("{}/{}", self.root, utf8_percent_encode(name, OBJECT_PATH))
    }

    /// The URL of an object or of the bucket (`name` empty) with query
    /// parameters, encoded the way SigV4 canonicalizes them.
    pub fn url_with_query(&self, name: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut url = match name {
            Some(name) => self.object_url(name),
            None => format!("{}/", self.root),
        };
        for (index, (param, value)) in query.iter().enumerate() {
            url.push(if index == 0 { '?' } else { '&' });
            url.push_str(param);
            url.push('=');
            url.extend(utf8_percent_encode(value, STRICT));
        }
        url
    }

    /// `/bucket/name`, as `x-amz-copy-source` wants it.
    pub fn copy_source(&self, name: &str) -> String {
        format!(
            "/{}/{}",
            utf8_percent_encode(&self.bucket, STRICT),
            utf8_percent_encode(name, OBJECT_PATH)
        )
    }

    /// A deadline for one call, the backend timeout from now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Sends a call, retried as `retry` allows, within `deadline`. Any
    /// answer S3 gives is returned (the caller decides what a 404 or a 412
    /// means); only transport failures and the deadline are errors.
    pub async fn send(
        &self,
        call: &Call,
        retry: Retry,
        deadline: Instant,
        what: &str,
    ) -> Result<Response> {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let outcome = tokio::time::timeout_at(deadline, self.attempt(call)).await;
            let last_answer = match outcome {
                Err(_) => return Err(timed_out(what, self.timeout)),
                Ok(Err(Attempt::Signing(error))) => return Err(error),
                Ok(Err(Attempt::Transport(error))) => {
                    if last || !error.is_connect() {
                        return Err(transport_error(&error, what, self.timeout));
                    }
                    tracing::debug!(what, attempt, error = %error, "S3 unreachable, retrying");
                    Err(error)
                }
                Ok(Ok(response)) => {
                    if last || retry != Retry::Idempotent || !retryable(response.status()) {
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
        }
        unreachable!("the last attempt always returns")
    }

    /// Signs (afresh: the signature carries the time) and sends once.
    async fn attempt(&self, call: &Call) -> Result<Response, Attempt> {
        let credential = self.credentials.get_credential().await.map_err(|e| {
            Attempt::Signing(Error::new(
                ErrorKind::Unavailable,
                format!("cannot load AWS credentials: {e}"),
            ))
        })?;
        let mut request: HttpRequest = http::Request::builder()
            .method(call.method.clone())
            .uri(&call.url)
            .body(HttpRequestBody::empty())
            .map_err(|e| {
                Attempt::Signing(Error::new(
                    ErrorKind::Internal,
                    format!("bad S3 request: {e}"),
                ))
            })?;
        *request.headers_mut() = call.headers.clone();
        // The payload is not hashed into the signature: TLS protects it,
        // and hashing would cost a pass over every body.
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .with_sign_payload(false)
            .try_authorize(&mut request, None)
            .map_err(|e| {
                Attempt::Signing(Error::new(ErrorKind::Internal, format!("cannot sign: {e}")))
            })?;
        let (parts, _) = request.into_parts();
        let mut request = self
            .http
            .request(call.method.clone(), &call.url)
            .headers(parts.headers);
        if !call.body.is_empty() || matches!(call.method, Method::PUT | Method::POST) {
            // S3 wants the length of every upload, streamed or not.
            request = request
                .header(http::header::CONTENT_LENGTH, call.body.len())
                .body(request_body(&call.body));
        }
        request.send().await.map_err(Attempt::Transport)
    }

    /// Reads a whole answer body within the deadline.
    pub async fn body(&self, response: Response, deadline: Instant, what: &str) -> Result<Bytes> {
        http_backend::whole_body("S3", response, deadline, what, self.timeout).await
    }

    /// Reads an XML answer of a successful call. S3 may answer 200 and
    /// still report an error in the body (CompleteMultipartUpload,
    /// CopyObject): that is turned into the error it stands for.
    pub async fn xml<T: for<'de> Deserialize<'de>>(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Result<T> {
        let body = self.body(response, deadline, what).await?;
        if is_error_document(&body) {
            let error = parse_error(&body);
            return Err(self.status_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error,
                &format!("S3 {what}"),
                missing,
            ));
        }
        quick_xml::de::from_reader(&body[..]).map_err(|e| {
            Error::new(
                ErrorKind::Internal,
                format!("S3 {what}: unexpected answer ({e}): {}", excerpt(&body)),
            )
        })
    }

    /// Sends a call and keeps only a successful answer: any other becomes
    /// the error it stands for, `missing` saying what a 404 means here.
    pub async fn send_ok(
        &self,
        call: &Call,
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

    /// Turns an unsuccessful answer into an error: `missing` says what a
    /// 404 means for this call (given S3's error code and the message).
    pub async fn failure(
        &self,
        response: Response,
        deadline: Instant,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Error {
        let status = response.status();
        let retry_after = header(response.headers(), "retry-after").map(str::to_owned);
        // The message is a courtesy: a body that does not come in time is
        // left out rather than turning a clear status into a timeout.
        let mut error = match self.body(response, deadline, what).await {
            Ok(body) => parse_error(&body),
            Err(_) => S3Error::default(),
        };
        if let Some(seconds) = retry_after {
            error.message = format!("{} (retry after {seconds} s)", error.message);
        }
        self.status_error(status, &error, &format!("S3 {what}"), missing)
    }

    /// The error an S3 status and error code stand for.
    pub fn status_error(
        &self,
        status: StatusCode,
        error: &S3Error,
        what: &str,
        missing: impl FnOnce(&str, String) -> Error,
    ) -> Error {
        let mut text = format!("{what}: {status}");
        for part in [&error.code, &error.message] {
            if !part.is_empty() {
                text.push_str(": ");
                text.push_str(part);
            }
        }
        match (status.as_u16(), error.code.as_str()) {
            (_, "NoSuchBucket") => Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{text} (is STATE_BUCKET={} an existing bucket?)",
                    self.bucket
                ),
            ),
            (_, "SlowDown" | "ServiceUnavailable" | "Throttling" | "ThrottlingException") => {
                Error::new(ErrorKind::Unavailable, text)
            }
            (_, "RequestTimeout") => Error::new(ErrorKind::Timeout, text),
            (_, "EntityTooLarge") => Error::new(ErrorKind::PayloadTooLarge, text),
            (301 | 307, _) | (_, "AuthorizationHeaderMalformed" | "PermanentRedirect") => {
                Error::new(
                    ErrorKind::Internal,
                    format!(
                        "{text} (is AWS_REGION={} the region of the bucket?)",
                        self.region
                    ),
                )
            }
            (400, _) => Error::new(ErrorKind::BadRequest, text),
            (401 | 403, _) => Error::new(ErrorKind::PermissionDenied, text),
            (404, code) => missing(code, text),
            (408 | 504, _) => Error::new(ErrorKind::Timeout, text),
            (409, _) => Error::new(ErrorKind::KeyConflict, text),
            (412, _) => Error::new(ErrorKind::PreconditionFailed, text),
            (413, _) => Error::new(ErrorKind::PayloadTooLarge, text),
            (429 | 500 | 502 | 503, _) => Error::new(ErrorKind::Unavailable, text),
            _ => Error::new(ErrorKind::Internal, text),
        }
    }
}

/// Slices of a large body handed to the connection one at a time.
const SLICE: usize = 64 << 10;

/// A request body that the HTTP client does not copy whole: a large body
/// is passed as a stream of slices of the same buffer (no copy), since
/// the connection may otherwise flatten all of it into its write buffer,
/// doubling the memory of every part in flight.
fn request_body(body: &Bytes) -> reqwest::Body {
    if body.len() <= SLICE {
        return reqwest::Body::from(body.clone());
    }
    let body = body.clone();
    let slices = (0..body.len()).step_by(SLICE).map(move |start| {
        Ok::<_, std::io::Error>(body.slice(start..(start + SLICE).min(body.len())))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(slices))
}

enum Attempt {
    Signing(Error),
    Transport(reqwest::Error),
}

pub(crate) fn timed_out(what: &str, timeout: Duration) -> Error {
    http_backend::timed_out("S3", what, timeout)
}

/// A failure below HTTP: S3 unreachable, a connection cut, a timeout.
pub(crate) fn transport_error(error: &reqwest::Error, what: &str, timeout: Duration) -> Error {
    http_backend::transport_error("S3", error, what, timeout)
}

/// An S3 error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename = "Error", rename_all = "PascalCase", default)]
pub(crate) struct S3Error {
    pub code: String,
    pub message: String,
}

/// The error document of a body, or its text when it is none (HEAD
/// answers have no body at all).
fn parse_error(body: &[u8]) -> S3Error {
    match quick_xml::de::from_reader::<_, S3Error>(body) {
        Ok(error) if !error.code.is_empty() => error,
        _ => S3Error {
            code: String::new(),
            message: excerpt(body),
        },
    }
}

/// Whether a 200 answer is in fact an error document: its root element
/// (after an optional XML declaration) is `<Error>`.
fn is_error_document(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&body[..body.len().min(256)]);
    let text = text.trim_start();
    let text = match text.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or("", |(_, after)| after.trim_start()),
        None => text,
    };
    text.starts_with("<Error>")
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
    headers.get(name).and_then(|value| value.to_str().ok())
}

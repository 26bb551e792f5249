//! Async client for the state proxy socket protocol (docs/protocol.md).
//!
//! ```no_run
//! # async fn demo() -> Result<(), state_client::ClientError> {
//! use state_client::{Client, Condition};
//! let client = Client::new("./state.sock");
//! let etag = client.put("counters/a", "1", Condition::IfAbsent).await?;
//! let object = client.get("counters/a").await?;
//! client.put("counters/a", "2", Condition::IfMatch(object.etag.unwrap())).await?;
//! # Ok(()) }
//! ```
//!
//! Keys are sent percent-encoded, with `X-Key-Encoding: percent`
//! ([`KEY_ENCODING`]), so any key a store can hold (spaces, `%`, `?`,
//! `#`, UTF-8) reaches the proxy exactly as given. The header goes only
//! with a request whose path or query holds an escape: without one, the
//! literal and the percent reading are the same text, and the proxy is
//! spared a header on every plain request. [`Client::raw`] sends its path
//! as it is and adds no header.
//!
//! By default connections are kept alive and reused; a client made with
//! [`Client::new_connection_per_request`] opens a fresh connection for
//! every request, as the compat Python runtime does.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Deserialize;

/// Errors that can be boxed into a request body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of requests sent by this client.
pub type RequestBody = UnsyncBoxBody<Bytes, BoxError>;

/// The request header that says keys and parameters are percent-encoded
/// (docs/protocol.md, "Keys"); without it the proxy takes them literally.
pub const KEY_ENCODING: &str = "x-key-encoding";
/// The value of [`KEY_ENCODING`] for percent-encoded keys.
pub const PERCENT: &str = "percent";

/// Characters escaped in key paths: everything but unreserved characters
/// and `/`, so a key reaches the proxy exactly as given.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// Characters escaped in query parameter values.
const QUERY_ESCAPES: &AsciiSet = &PATH_ESCAPES.add(b'&').add(b'=').add(b'+').add(b'/');

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The proxy answered with an error status.
    #[error("{status} {code}: {message}")]
    Status {
        status: u16,
        code: String,
        message: String,
    },
    #[error("invalid response: {0}")]
    InvalidResponse(String),
    /// A local file or stream failed (not the proxy).
    #[error("{0}")]
    Local(String),
}

impl ClientError {
    /// The HTTP status of an error answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `error` code of an error answer (`key_not_found`, ...).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Status { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// The explicit condition of a write or delete.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Condition {
    #[default]
    None,
    /// `If-None-Match: *`: create only.
    IfAbsent,
    /// `If-Match: <etag>`: only over this version.
    IfMatch(String),
}

impl Condition {
    fn apply(&self, headers: &mut HeaderMap) -> Result<()> {
        match self {
            Condition::None => {}
            Condition::IfAbsent => {
                headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
            }
            Condition::IfMatch(etag) => {
                let value = HeaderValue::from_str(etag)
                    .map_err(|_| ClientError::InvalidResponse(format!("bad etag {etag:?}")))?;
                headers.insert(header::IF_MATCH, value);
            }
        }
        Ok(())
    }
}

/// A whole object.
#[derive(Clone, Debug)]
pub struct Object {
    pub data: Bytes,
    pub etag: Option<String>,
}

/// What `HEAD` says of an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub etag: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Listing {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
}

/// An attribute of `/meta`, as `/capabilities` lists it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Xattr {
    pub name: String,
    pub settable: bool,
}

/// What the connector supports (`GET /capabilities`). Fields a proxy
/// does not send keep their defaults.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Capabilities {
    pub connector: String,
    pub store: String,
    pub mode: String,
    pub create_if_absent: bool,
    pub if_match_writes: bool,
    pub conditional_delete: bool,
    /// Capacity of the remembered versions of a compare-and-swap connector.
    pub remembered_versions: Option<u64>,
    pub streaming: bool,
    pub query: bool,
    pub ttl: bool,
    pub nested_keys: bool,
    pub xattrs: Vec<Xattr>,
    /// `None` when bodies stream.
    pub max_body_bytes: Option<u64>,
    /// The self-test run at start, as the proxy reported it.
    pub selftest: Option<serde_json::Value>,
}

/// The answer of `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// 503: the reason the proxy gave.
    NotReady(String),
}

/// A response read whole, for callers that inspect everything.
#[derive(Clone, Debug)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| ClientError::InvalidResponse(format!("body is not JSON: {e}")))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client of one proxy socket; cheap to share between tasks.
pub struct Client {
    socket: PathBuf,
    keep_alive: bool,
    idle: Mutex<Vec<SendRequest<RequestBody>>>,
}

impl Client {
    /// A client that keeps connections alive and reuses them.
    pub fn new(socket: impl AsRef<Path>) -> Client {
        Client {
            socket: socket.as_ref().to_owned(),
            keep_alive: true,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A client that opens a new connection for every request and closes
    /// it after the answer (as the compat runtime does).
    pub fn new_connection_per_request(socket: impl AsRef<Path>) -> Client {
        Client {
            keep_alive: false,
            ..Client::new(socket)
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    /// An idle connection from the pool, or a new one.
    async fn connection(&self) -> Result<SendRequest<RequestBody>> {
        if self.keep_alive {
            loop {
                let Some(mut sender) = self.idle.lock().pop() else {
                    break;
                };
                if sender.ready().await.is_ok() {
                    return Ok(sender);
                }
            }
        }
        self.connect().await
    }

    fn release(&self, sender: SendRequest<RequestBody>) {
        if self.keep_alive && !sender.is_closed() {
            self.idle.lock().push(sender);
        }
    }

    /// Sends a request; a pooled connection closed by the proxy before
    /// the request went out is replaced by a fresh one. Returns the
    /// connection with the response so it can go back to the pool once
    /// the body is read.
    async fn exchange(
        &self,
        request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, SendRequest<RequestBody>)> {
        let mut sender = self.connection().await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok((response, sender)),
            Err(mut failed) => match failed.take_message() {
                Some(unsent) if self.keep_alive => {
                    let mut fresh = self.connect().await?;
                    let response = fresh.send_request(unsent).await?;
                    Ok((response, fresh))
                }
                _ => Err(failed.into_error().into()),
            },
        }
    }

    fn request(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
    ) -> Request<RequestBody> {
        let mut request = Request::new(body);
        *request.method_mut() = method;
        *request.uri_mut() = path_and_query
            .parse()
            .unwrap_or_else(|_| "/".parse().expect("static"));
        request
            .headers_mut()
            .insert(header::HOST, HeaderValue::from_static("localhost"));
        request
    }

    /// A request naming a key (in its path or its query), which this
    /// client percent-encodes.
    fn keyed(
        &self,
        method: Method,
        path_and_query: &str,
        body: RequestBody,
    ) -> Request<RequestBody> {
        let mut request = self.request(method, path_and_query, body);
        if needs_key_encoding(path_and_query) {
            request
                .headers_mut()
                .insert(KEY_ENCODING, HeaderValue::from_static(PERCENT));
        }
        request
    }

    /// Sends any request and reads the whole answer, whatever its status.
    pub async fn raw(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
    ) -> Result<RawResponse> {
        let mut request = self.request(method, path_and_query, full(body.into()));
        request.headers_mut().extend(headers);
        self.send_whole(request).await
    }

    /// [`Client::raw`], but reads at most `limit` bytes of the answer's
    /// body: a longer one is [`ClientError::InvalidResponse`] (and its
    /// connection is dropped, not pooled).
    pub async fn raw_limited(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: impl Into<Bytes>,
        limit: usize,
    ) -> Result<RawResponse> {
        let mut request = self.request(method, path_and_query, full(body.into()));
        request.headers_mut().extend(headers);
        self.send_limited(request, Some(limit)).await
    }

    async fn send_whole(&self, request: Request<RequestBody>) -> Result<RawResponse> {
        self.send_limited(request, None).await
    }

    async fn send_limited(
        &self,
        request: Request<RequestBody>,
        limit: Option<usize>,
    ) -> Result<RawResponse> {
        let (response, sender) = self.exchange(request).await?;
        let (parts, body) = response.into_parts();
        let body = match limit {
            None => body.collect().await?.to_bytes(),
            Some(limit) => match http_body_util::Limited::new(body, limit).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(e) => {
                    return Err(match e.downcast::<hyper::Error>() {
                        Ok(e) => ClientError::Http(*e),
                        Err(_) => ClientError::InvalidResponse(format!(
                            "answer longer than {limit} bytes"
                        )),
                    });
                }
            },
        };
        self.release(sender);
        Ok(RawResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Sends a request and turns an error status into [`ClientError::Status`].
    async fn send_checked(&self, request: Request<RequestBody>) -> Result<RawResponse> {
        let response = self.send_whole(request).await?;
        check(response)
    }

    pub async fn healthz(&self) -> Result<()> {
        let request = self.request(Method::GET, "/healthz", empty());
        self.send_checked(request).await.map(drop)
    }

    /// `GET /readyz`: whether the backend answered a probe recently.
    pub async fn readyz(&self) -> Result<Readiness> {
        let request = self.request(Method::GET, "/readyz", empty());
        let response = self.send_whole(request).await?;
        if response.status == StatusCode::SERVICE_UNAVAILABLE {
            let json = response.json()?;
            let reason = json["reason"].as_str().unwrap_or("not ready").to_owned();
            return Ok(Readiness::NotReady(reason));
        }
        check(response).map(|_| Readiness::Ready)
    }

    /// `GET /capabilities`.
    pub async fn capabilities(&self) -> Result<Capabilities> {
        let request = self.request(Method::GET, "/capabilities", empty());
        let response = self.send_checked(request).await?;
        serde_json::from_slice(&response.body)
            .map_err(|e| ClientError::InvalidResponse(format!("capabilities: {e}")))
    }

    /// `GET /metrics`: the Prometheus text exposition.
    pub async fn metrics(&self) -> Result<String> {
        let request = self.request(Method::GET, "/metrics", empty());
        let response = self.send_checked(request).await?;
        String::from_utf8(response.body.to_vec())
            .map_err(|e| ClientError::InvalidResponse(format!("metrics are not UTF-8: {e}")))
    }

    pub async fn get(&self, key: &str) -> Result<Object> {
        let request = self.keyed(Method::GET, &key_path("keys", key), empty());
        let response = self.send_checked(request).await?;
        Ok(Object {
            etag: response.header("etag").map(str::to_owned),
            data: response.body,
        })
    }

    /// Reads an object as a stream of chunks, with its size and version.
    pub async fn get_stream(
        &self,
        key: &str,
    ) -> Result<(Stat, impl Stream<Item = Result<Bytes>> + Send + 'static)> {
        let request = self.keyed(Method::GET, &key_path("keys", key), empty());
        // The connection is not pooled: it is busy until the stream ends,
        // and the stream keeps it alive.
        let (response, sender) = self.exchange(request).await?;
        if !response.status().is_success() {
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            return Err(status_error(parts.status, &body));
        }
        let stat = stat_of(response.headers())?;
        let stream = response.into_body().into_data_stream().map(move |chunk| {
            let _connection = &sender;
            chunk.map_err(ClientError::from)
        });
        Ok((stat, stream))
    }

    /// `None` when the key does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<Stat>> {
        let request = self.keyed(Method::HEAD, &key_path("keys", key), empty());
        let response = self.send_whole(request).await?;
        if response.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = check(response)?;
        stat_of(&response.headers).map(Some)
    }

    /// Writes a whole body; returns the new ETag.
    pub async fn put(
        &self,
        key: &str,
        data: impl Into<Bytes>,
        condition: Condition,
    ) -> Result<String> {
        let request = self.keyed(Method::PUT, &key_path("keys", key), full(data.into()));
        self.put_request(request, &condition).await
    }

    /// Streams a body, sent chunked (each item one chunk) unless `size`
    /// is given.
    pub async fn put_stream<S, E>(
        &self,
        key: &str,
        chunks: S,
        size: Option<u64>,
        condition: Condition,
    ) -> Result<String>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let body = StreamBody::new(chunks.map(|chunk| chunk.map(Frame::data).map_err(Into::into)));
        let mut request = self.keyed(
            Method::PUT,
            &key_path("keys", key),
            BodyExt::boxed_unsync(body),
        );
        if let Some(size) = size {
            request
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
        self.put_request(request, &condition).await
    }

    async fn put_request(
        &self,
        mut request: Request<RequestBody>,
        condition: &Condition,
    ) -> Result<String> {
        condition.apply(request.headers_mut())?;
        let response = self.send_checked(request).await?;
        response
            .header("etag")
            .map(str::to_owned)
            .ok_or_else(|| ClientError::InvalidResponse("PUT answer without ETag".into()))
    }

    pub async fn delete(&self, key: &str, condition: Condition) -> Result<()> {
        let mut request = self.keyed(Method::DELETE, &key_path("keys", key), empty());
        condition.apply(request.headers_mut())?;
        self.send_checked(request).await.map(drop)
    }

    /// Lists keys under `prefix`. `delimiter` `None` sends none (the proxy
    /// then uses `/`); `Some("")` asks for a recursive listing.
    pub async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let mut path = format!(
            "/keys/?prefix={}",
            utf8_percent_encode(prefix, QUERY_ESCAPES)
        );
        if let Some(delimiter) = delimiter {
            path.push_str("&delimiter=");
            path.extend(utf8_percent_encode(delimiter, QUERY_ESCAPES));
        }
        let response = self
            .send_checked(self.keyed(Method::GET, &path, empty()))
            .await?;
        serde_json::from_slice(&response.body)
            .map_err(|e| ClientError::InvalidResponse(format!("listing: {e}")))
    }

    /// The attribute names of a key.
    pub async fn attrs(&self, key: &str) -> Result<Vec<String>> {
        let request = self.keyed(Method::GET, &key_path("meta", key), empty());
        let json = self.send_checked(request).await?.json()?;
        serde_json::from_value(json["attrs"].clone())
            .map_err(|e| ClientError::InvalidResponse(format!("attrs: {e}")))
    }

    pub async fn get_attr(&self, key: &str, attr: &str) -> Result<String> {
        let request = self.keyed(Method::GET, &attr_path(key, attr), empty());
        let json = self.send_checked(request).await?.json()?;
        json["value"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::InvalidResponse("attribute value is not a string".into()))
    }

    pub async fn set_attr(&self, key: &str, attr: &str, value: &str) -> Result<()> {
        let body = serde_json::json!({ "value": value }).to_string();
        let request = self.keyed(Method::PUT, &attr_path(key, attr), full(Bytes::from(body)));
        self.send_checked(request).await.map(drop)
    }

    /// `POST /query`, answering the JSON result.
    pub async fn query(&self, query: &serde_json::Value) -> Result<serde_json::Value> {
        let request = self.request(Method::POST, "/query", full(Bytes::from(query.to_string())));
        self.send_checked(request).await?.json()
    }
}

/// Whether a request this client percent-encoded must say so
/// (`X-Key-Encoding: percent`): only when it holds an escape, since text
/// without one reads the same either way (`+` is a plus in both).
pub fn needs_key_encoding(path_and_query: &str) -> bool {
    path_and_query.contains('%')
}

/// `/keys/<escaped key>` or `/meta/<escaped key>`, for a request that
/// carries `X-Key-Encoding: percent` ([`KEY_ENCODING`]) when
/// [`needs_key_encoding`].
pub fn key_path(route: &str, key: &str) -> String {
    format!("/{route}/{}", utf8_percent_encode(key, PATH_ESCAPES))
}

fn attr_path(key: &str, attr: &str) -> String {
    format!(
        "{}?attr={}",
        key_path("meta", key),
        utf8_percent_encode(attr, QUERY_ESCAPES)
    )
}

fn empty() -> RequestBody {
    full(Bytes::new())
}

fn full(bytes: Bytes) -> RequestBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn check(response: RawResponse) -> Result<RawResponse> {
    if response.status.is_client_error() || response.status.is_server_error() {
        Err(status_error(response.status, &response.body))
    } else {
        Ok(response)
    }
}

/// The proxy's JSON error, or what can be said without one.
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |field: &str| json[field].as_str().map(str::to_owned);
    ClientError::Status {
        status: status.as_u16(),
        code: text("error")
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
        message: text("message").unwrap_or_default(),
    }
}

fn stat_of(headers: &HeaderMap) -> Result<Stat> {
    let size = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ClientError::InvalidResponse("missing Content-Length".into()))?;
    let etag = headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Stat { size, etag })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_only_where_needed() {
        assert_eq!(key_path("keys", "a/b-c_d.e~f"), "/keys/a/b-c_d.e~f");
        assert_eq!(key_path("keys", "a b?c#d%"), "/keys/a%20b%3Fc%23d%25");
        assert_eq!(key_path("meta", "café"), "/meta/caf%C3%A9");
        assert_eq!(attr_path("k", "content_type"), "/meta/k?attr=content_type");
    }

    #[test]
    fn the_encoding_is_declared_only_for_paths_with_escapes() {
        // Plain keys read the same either way, `+` included.
        assert!(!needs_key_encoding(&key_path("keys", "a/b+c.json")));
        assert!(needs_key_encoding(&key_path("keys", "50%off")));
        assert!(needs_key_encoding(&key_path("keys", "a b")));
        assert!(needs_key_encoding(&key_path("meta", "café")));
    }

    #[test]
    fn error_answers_keep_code_and_message() {
        let body = br#"{"error":"key_not_found","message":"key 'a' not found"}"#;
        let error = status_error(StatusCode::NOT_FOUND, body);
        assert!(error.is_not_found());
        assert_eq!(error.code(), Some("key_not_found"));
        assert_eq!(error.to_string(), "404 key_not_found: key 'a' not found");
        let bare = status_error(StatusCode::BAD_REQUEST, b"");
        assert_eq!(bare.code(), Some("Bad Request"));
    }
}

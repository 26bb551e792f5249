//! Routes of PROTOCOL.md: from an HTTP request to a mode call and back.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use hyper::body::Incoming;
use serde::Serialize;

use super::body::{RequestBody, ResponseBody};
use super::errors::{error_response, json_error};
use crate::capabilities::Capabilities;
use crate::error::{Error, Result};
use crate::key::{Key, validate_list_prefix};
use crate::metrics::{self, Metrics, RouteName};
use crate::mode::Mode;
use crate::query::{self, Query, QueryLimits};
use crate::readiness::Readiness;
use crate::selftest::SelftestReport;
use crate::store::{Body, Condition, Version};
use crate::timing;

/// Largest `/meta` request body (`{"value": ...}`).
const META_BODY_MAX: u64 = 64 * 1024;
/// Largest `/query` request body.
pub const QUERY_BODY_MAX: u64 = 1 << 20;

/// What the proxy serves: the mode (and through it the store), the
/// bounds of queries, and what it tells operators about itself.
pub struct App {
    mode: Mode,
    query_limits: QueryLimits,
    metrics: Arc<Metrics>,
    readiness: Readiness,
    selftest: Option<SelftestReport>,
}

/// The resource a path names.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Healthz,
    Readyz,
    Capabilities,
    Metrics,
    /// `/keys/` itself: a listing for GET.
    KeysRoot,
    Key(&'a str),
    Meta(&'a str),
    Query,
    Unknown,
}

impl Route<'_> {
    fn parse(path: &str) -> Route<'_> {
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/capabilities" => Route::Capabilities,
            "/metrics" => Route::Metrics,
            "/keys" | "/keys/" => Route::KeysRoot,
            "/query" => Route::Query,
            _ => {
                if let Some(raw) = path.strip_prefix("/keys/") {
                    Route::Key(raw)
                } else if let Some(raw) = path.strip_prefix("/meta/") {
                    Route::Meta(raw)
                } else {
                    Route::Unknown
                }
            }
        }
    }

    /// Methods served on this route, for 405 and `Allow`.
    fn allowed(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Readyz | Route::Capabilities | Route::Metrics => "GET, HEAD",
            Route::KeysRoot | Route::Key(_) => "GET, HEAD, PUT, DELETE",
            Route::Meta(_) => "GET, PUT",
            Route::Query => "POST",
            Route::Unknown => "",
        }
    }

    /// The route's name in metrics: never the key, so the number of
    /// series stays bounded.
    fn label(&self) -> RouteName {
        match self {
            Route::Healthz => RouteName::Healthz,
            Route::Readyz => RouteName::Readyz,
            Route::Capabilities => RouteName::Capabilities,
            Route::Metrics => RouteName::Metrics,
            Route::KeysRoot => RouteName::Keys,
            Route::Key(_) => RouteName::Key,
            Route::Meta(_) => RouteName::Meta,
            Route::Query => RouteName::Query,
            Route::Unknown => RouteName::Unknown,
        }
    }
}

/// What an [`App`] is made of; the composition root (`crate::connector`)
/// builds it.
pub struct AppParts {
    /// The consistency policy over the (instrumented) store.
    pub mode: Mode,
    /// The process's metrics, which every answer is counted in.
    pub metrics: Arc<Metrics>,
    /// The backend probe behind `/readyz`.
    pub readiness: Readiness,
    pub query_limits: QueryLimits,
    /// The self-test run at start, shown in `/capabilities`.
    pub selftest: Option<SelftestReport>,
}

impl App {
    pub fn new(parts: AppParts) -> App {
        App {
            mode: parts.mode,
            query_limits: parts.query_limits,
            metrics: parts.metrics,
            readiness: parts.readiness,
            selftest: parts.selftest,
        }
    }

    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Serves one request. Whatever happens, the answer is complete and
    /// the request body is read to its end or the connection is closed.
    /// Every answer carries `Server-Timing` and is counted in the metrics;
    /// both cover the time until the response headers (a streamed body
    /// goes out after them).
    pub async fn handle(&self, request: http::Request<Incoming>) -> Response<ResponseBody> {
        let started = Instant::now();
        let (parts, incoming) = request.into_parts();
        let route = Route::parse(parts.uri.path());
        let route_label = route.label();
        let mut body = RequestBody::new(incoming);
        let (mut response, backend) = timing::with_backend_clock(async {
            let mut response = match self.dispatch(route, &parts, &mut body).await {
                Ok(response) => response,
                Err(error) if parts.method == Method::HEAD => {
                    empty(super::errors::status_of(&error))
                }
                Err(error) => error_response(&error),
            };
            if !body.finish().await {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })
        .await;
        let elapsed = started.elapsed();
        response.headers_mut().insert(
            timing::SERVER_TIMING,
            timing::server_timing(backend, elapsed),
        );
        self.metrics.count_received(body.received());
        self.metrics
            .record_request(route_label, &parts.method, response.status(), elapsed);
        if parts.method == Method::HEAD {
            response
        } else {
            response.map(|body| self.count_sent(body))
        }
    }

    /// Counts a response body's bytes: now when it is whole, chunk by
    /// chunk as it streams out otherwise.
    fn count_sent(&self, body: ResponseBody) -> ResponseBody {
        match body {
            ResponseBody::Stream { stream, size } => {
                let metrics = Arc::clone(&self.metrics);
                let stream = stream
                    .inspect(move |chunk| {
                        if let Ok(data) = chunk {
                            metrics.count_sent(data.len() as u64);
                        }
                    })
                    .boxed();
                ResponseBody::Stream { stream, size }
            }
            ResponseBody::Full(Some(bytes)) => {
                self.metrics.count_sent(bytes.len() as u64);
                ResponseBody::Full(Some(bytes))
            }
            other => other,
        }
    }

    async fn dispatch(
        &self,
        route: Route<'_>,
        parts: &Parts,
        body: &mut RequestBody,
    ) -> Result<Response<ResponseBody>> {
        let query = parts.uri.query();
        let method = &parts.method;
        match (&route, method) {
            (Route::Healthz, &Method::GET | &Method::HEAD) => {
                json(StatusCode::OK, &serde_json::json!({ "status": "ready" }))
            }
            (Route::Readyz, &Method::GET | &Method::HEAD) => self.readyz().await,
            (Route::Capabilities, &Method::GET | &Method::HEAD) => json(
                StatusCode::OK,
                &Capabilities::of(&self.mode, self.selftest.as_ref()),
            ),
            (Route::Metrics, &Method::GET | &Method::HEAD) => Ok(metrics_response(&self.metrics)),
            (Route::KeysRoot, &Method::GET) => self.list(query).await,
            (Route::KeysRoot, &Method::HEAD | &Method::PUT | &Method::DELETE) => {
                Err(Error::bad_request("key is empty"))
            }
            (Route::Key(raw), &Method::GET) => self.get(&Key::from_path(raw)?).await,
            (Route::Key(raw), &Method::HEAD) => self.head(&Key::from_path(raw)?).await,
            (Route::Key(raw), &Method::PUT) => {
                self.put(&Key::from_path(raw)?, &parts.headers, body).await
            }
            (Route::Key(raw), &Method::DELETE) => {
                self.delete(&Key::from_path(raw)?, &parts.headers).await
            }
            (Route::Meta(raw), &Method::GET) => self.get_meta(&Key::from_path(raw)?, query).await,
            (Route::Meta(raw), &Method::PUT) => {
                self.put_meta(&Key::from_path(raw)?, query, body).await
            }
            (Route::Query, &Method::POST) => self.query(body).await,
            (Route::Unknown, _) => Ok(json_error(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route for {}", parts.uri.path()),
            )),
            _ => {
                let mut response = json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    &format!("{method} is not allowed on {}", parts.uri.path()),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(route.allowed()));
                Ok(response)
            }
        }
    }

    /// 200 when the backend answered a probe recently, 503 with the
    /// reason otherwise.
    async fn readyz(&self) -> Result<Response<ResponseBody>> {
        match self.readiness.check().await {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({ "status": "ready" })),
            Err(reason) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({ "status": "not_ready", "reason": reason }),
            ),
        }
    }

    async fn get(&self, key: &Key) -> Result<Response<ResponseBody>> {
        let object = self.mode.get(key).await?;
        let body = match object.body {
            Body::Full(bytes) => ResponseBody::Full(Some(bytes)),
            Body::Stream { stream, size } => ResponseBody::Stream {
                stream,
                size: size.or(Some(object.meta.size)),
            },
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(object.meta.size));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(header::ETAG, etag(&object.meta.version)?);
        Ok(response)
    }

    async fn head(&self, key: &Key) -> Result<Response<ResponseBody>> {
        let meta = self.mode.head(key).await?;
        let mut response = empty(StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
        headers.insert("x-is-file", HeaderValue::from_static("true"));
        headers.insert(header::ETAG, etag(&meta.version)?);
        Ok(response)
    }

    async fn put(
        &self,
        key: &Key,
        headers: &HeaderMap,
        body: &mut RequestBody,
    ) -> Result<Response<ResponseBody>> {
        let condition = write_condition(headers)?;
        let content = match self.mode.body_limit() {
            Some(limit) => Body::Full(body.read_all(limit).await?),
            None => Body::Stream {
                size: body.announced_len(),
                stream: body.into_stream(),
            },
        };
        let version = self.mode.put(key, content, condition).await?;
        let mut response = empty(StatusCode::NO_CONTENT);
        response.headers_mut().insert(header::ETAG, etag(&version)?);
        Ok(response)
    }

    async fn delete(&self, key: &Key, headers: &HeaderMap) -> Result<Response<ResponseBody>> {
        if headers.contains_key(header::IF_NONE_MATCH) {
            return Err(Error::bad_request(
                "If-None-Match is not supported on DELETE",
            ));
        }
        self.mode.delete(key, write_condition(headers)?).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }

    async fn list(&self, query: Option<&str>) -> Result<Response<ResponseBody>> {
        let mut prefix = String::new();
        let mut delimiter = Some("/".to_owned());
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "prefix" => prefix = value.into_owned(),
                "delimiter" => delimiter = Some(value.into_owned()).filter(|d| !d.is_empty()),
                _ => {}
            }
        }
        validate_list_prefix(&prefix)?;
        let listing = self.mode.list(&prefix, delimiter.as_deref()).await?;
        #[derive(Serialize)]
        struct Listing<'a> {
            keys: &'a [String],
            prefixes: &'a [String],
        }
        json(
            StatusCode::OK,
            &Listing {
                keys: &listing.keys,
                prefixes: &listing.prefixes,
            },
        )
    }

    async fn query(&self, body: &mut RequestBody) -> Result<Response<ResponseBody>> {
        let request = body.read_all(QUERY_BODY_MAX).await?;
        let query = Query::parse(&request, &self.query_limits)?;
        let started = std::time::Instant::now();
        // Straight to the store, past the mode: see `query::run` for why.
        let answer = query::run(self.mode.store().as_ref(), &query, &self.query_limits).await?;
        tracing::debug!(
            prefix = %query.prefix,
            total = answer.total,
            truncated = answer.truncated,
            skipped = answer.skipped,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "query answered"
        );
        json(StatusCode::OK, &answer)
    }

    async fn get_meta(&self, key: &Key, query: Option<&str>) -> Result<Response<ResponseBody>> {
        match attr_param(query) {
            None => {
                let attrs = self.mode.attributes(key).await?;
                json(StatusCode::OK, &serde_json::json!({ "attrs": attrs }))
            }
            Some(attr) => {
                let value = self.mode.get_attr(key, &attr).await?;
                json(
                    StatusCode::OK,
                    &serde_json::json!({ "attr": attr, "value": value }),
                )
            }
        }
    }

    async fn put_meta(
        &self,
        key: &Key,
        query: Option<&str>,
        body: &mut RequestBody,
    ) -> Result<Response<ResponseBody>> {
        let attr = attr_param(query)
            .ok_or_else(|| Error::bad_request("missing the attr query parameter"))?;
        let value = meta_value(&body.read_all(META_BODY_MAX).await?)?;
        self.mode.set_attr(key, &attr, &value).await?;
        Ok(empty(StatusCode::NO_CONTENT))
    }
}

fn attr_param(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == "attr")
        .map(|(_, value)| value.into_owned())
}

/// The value of a `/meta` PUT body, `{"value": "..."}`; numbers are
/// accepted as their decimal text.
fn meta_value(body: &Bytes) -> Result<String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::bad_request(format!("body is not valid JSON: {e}")))?;
    match json.get("value") {
        Some(serde_json::Value::String(text)) => Ok(text.clone()),
        Some(serde_json::Value::Number(number)) => Ok(number.to_string()),
        Some(_) => Err(Error::bad_request("\"value\" must be a string")),
        None => Err(Error::bad_request(
            "body must be a JSON object with a \"value\" field",
        )),
    }
}

/// The explicit condition of a write or delete.
fn write_condition(headers: &HeaderMap) -> Result<Condition> {
    let if_match = header_text(headers, header::IF_MATCH)?;
    let if_none_match = header_text(headers, header::IF_NONE_MATCH)?;
    match (if_match, if_none_match) {
        (None, None) => Ok(Condition::None),
        (Some(_), Some(_)) => Err(Error::bad_request(
            "If-Match and If-None-Match cannot be combined",
        )),
        (None, Some("*")) => Ok(Condition::IfAbsent),
        (None, Some(_)) => Err(Error::bad_request(
            "only If-None-Match: * is supported on writes",
        )),
        (Some(tag), None) => parse_etag(tag).map(Condition::IfMatch),
    }
}

/// One strong entity tag, quoted or not.
fn parse_etag(tag: &str) -> Result<Version> {
    if tag == "*" {
        return Err(Error::bad_request(
            "If-Match: * is not supported; send the version (ETag) you expect",
        ));
    }
    if tag.starts_with("W/") {
        return Err(Error::bad_request(
            "weak entity tags cannot be used with If-Match",
        ));
    }
    let inner = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    if inner.is_empty() || inner.contains(['"', ',']) {
        return Err(Error::bad_request(format!(
            "If-Match must hold exactly one entity tag, got {tag}"
        )));
    }
    Ok(Version::new(inner))
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<&str>> {
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Error::bad_request(format!(
            "{name} is given more than once"
        )));
    }
    value
        .to_str()
        .map(|text| Some(text.trim()))
        .map_err(|_| Error::bad_request(format!("{name} is not visible ASCII")))
}

fn etag(version: &Version) -> Result<HeaderValue> {
    HeaderValue::from_str(&version.etag())
        .map_err(|_| Error::internal(format!("version {version:?} cannot be an ETag")))
}

/// The text exposition of `metrics`, as the socket and the TCP listener
/// serve it.
pub fn metrics_response(metrics: &Metrics) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(metrics.encode()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Result<Response<ResponseBody>> {
    let body = serde_json::to_vec(value).map_err(Error::internal)?;
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_recognised() {
        assert_eq!(Route::parse("/healthz"), Route::Healthz);
        assert_eq!(Route::parse("/readyz"), Route::Readyz);
        assert_eq!(Route::parse("/capabilities"), Route::Capabilities);
        assert_eq!(Route::parse("/metrics"), Route::Metrics);
        assert_eq!(Route::parse("/keys/metrics").label(), RouteName::Key);
        assert_eq!(Route::parse("/keys/"), Route::KeysRoot);
        assert_eq!(Route::parse("/keys"), Route::KeysRoot);
        assert_eq!(Route::parse("/keys/a/b"), Route::Key("a/b"));
        assert_eq!(Route::parse("/meta/a"), Route::Meta("a"));
        assert_eq!(Route::parse("/meta/"), Route::Meta(""));
        assert_eq!(Route::parse("/query"), Route::Query);
        assert_eq!(Route::parse("/keysx"), Route::Unknown);
        assert_eq!(Route::parse("/"), Route::Unknown);
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn conditions_from_headers() {
        assert_eq!(write_condition(&headers(&[])), Ok(Condition::None));
        assert_eq!(
            write_condition(&headers(&[("if-none-match", "*")])),
            Ok(Condition::IfAbsent)
        );
        let quoted = write_condition(&headers(&[("if-match", "\"abc\"")]));
        let bare = write_condition(&headers(&[("if-match", "abc")]));
        assert_eq!(quoted, Ok(Condition::IfMatch(Version::new("abc"))));
        assert_eq!(quoted, bare);
    }

    #[test]
    fn unsupported_conditions_are_bad_requests() {
        for pairs in [
            &[("if-match", "*")][..],
            &[("if-match", "W/\"a\"")],
            &[("if-match", "\"a\", \"b\"")],
            &[("if-match", "\"\"")],
            &[("if-none-match", "\"a\"")],
            &[("if-match", "\"a\""), ("if-none-match", "*")],
            &[("if-match", "\"a\""), ("if-match", "\"b\"")],
        ] {
            let result = write_condition(&headers(pairs));
            assert!(
                matches!(result, Err(Error::BadRequest(_))),
                "{pairs:?}: {result:?}"
            );
        }
    }

    #[test]
    fn meta_values() {
        assert_eq!(
            meta_value(&Bytes::from(r#"{"value":"text/plain"}"#)).unwrap(),
            "text/plain"
        );
        assert_eq!(meta_value(&Bytes::from(r#"{"value":60}"#)).unwrap(), "60");
        for bad in [
            r#"{"value":null}"#,
            "{}",
            "[]",
            "not json",
            r#"{"value":[1]}"#,
        ] {
            assert!(
                matches!(meta_value(&Bytes::from(bad)), Err(Error::BadRequest(_))),
                "{bad}"
            );
        }
    }
}

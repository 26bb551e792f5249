//! The application: what every request goes through. The path is routed
//! (`route`), the handler runs (`handlers`), the request body is read to
//! its end or the connection marked for closing, and the answer is timed
//! (`Server-Timing`) and counted in the metrics.
//!
//! [`App::handle`] takes any request body ([`IncomingBody`]), so tests
//! drive the application in process, without a socket.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use super::body::{IncomingBody, RequestBody, ResponseBody};
use super::budget::MemoryBudget;
use super::errors::{error_response, json_error, status_of};
use super::naming::Naming;
use super::response::{empty, json, metrics_response};
use super::route::Route;
use crate::capabilities::Capabilities;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::mode::Mode;
use crate::query::QueryLimits;
use crate::readiness::Readiness;
use crate::selftest::SelftestReport;
use crate::timing;

/// What the proxy serves: the mode (and through it the store), the
/// bounds of queries, and what it tells operators about itself.
pub struct App {
    pub(super) mode: Mode,
    pub(super) query_limits: QueryLimits,
    pub(super) metrics: Arc<Metrics>,
    pub(super) readiness: Readiness,
    selftest: Option<SelftestReport>,
    pub(super) budget: MemoryBudget,
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
    /// The memory all request bodies held whole share.
    pub budget: MemoryBudget,
}

impl App {
    pub fn new(parts: AppParts) -> App {
        App {
            mode: parts.mode,
            query_limits: parts.query_limits,
            metrics: parts.metrics,
            readiness: parts.readiness,
            selftest: parts.selftest,
            budget: parts.budget,
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
    ///
    /// A plain function returning the future, which owns the application
    /// and the request's parts: every layer of `async` around a future
    /// keeps what it was given beside what it awaits, and this future is
    /// moved on every request, so it is kept flat (one copy of the
    /// request, no `async` wrapper around the handler's future).
    pub fn handle<B: IncomingBody>(
        self: Arc<Self>,
        request: Request<B>,
    ) -> impl Future<Output = Response<ResponseBody>> + 'static {
        let started = Instant::now();
        let (parts, incoming) = request.into_parts();
        async move {
            let app = &*self;
            let route = Route::parse(parts.uri.path());
            let route_label = route.label();
            let mut body = RequestBody::new(incoming, &app.budget);
            let (mut response, backend) = timing::with_backend_clock(async {
                let mut response = match app.dispatch(route, &parts, &mut body).await {
                    Ok(response) => response,
                    Err(error) if parts.method == Method::HEAD => empty(status_of(&error)),
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
            app.metrics.count_received(body.received());
            app.metrics
                .record_request(route_label, &parts.method, response.status(), elapsed);
            if parts.method == Method::HEAD {
                response
            } else {
                response.map(|body| app.count_sent(body))
            }
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

    async fn dispatch<B: IncomingBody>(
        &self,
        route: Route<'_>,
        parts: &Parts,
        body: &mut RequestBody<'_, B>,
    ) -> Result<Response<ResponseBody>> {
        let query = parts.uri.query();
        // Read only where keys are named, so that a health check is never
        // refused for the header.
        let naming = || Naming::of(&parts.headers);
        let method = &parts.method;
        // Only a body without a length can have come in a transfer coding
        // (hyper frames such a body by its last coding, `chunked`); the
        // lookup costs every other request nothing.
        if body.announced_len().is_none() {
            refuse_transfer_codings(&parts.headers)?;
        }
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
            (Route::KeysRoot, &Method::GET) => self.list(naming()?, query).await,
            (Route::KeysRoot, &Method::HEAD | &Method::PUT | &Method::DELETE) => {
                Err(Error::bad_request("key is empty"))
            }
            (Route::Key(raw), &Method::GET) => self.get(&naming()?.key(raw)?).await,
            (Route::Key(raw), &Method::HEAD) => self.head(&naming()?.key(raw)?).await,
            (Route::Key(raw), &Method::PUT) => {
                self.put(&naming()?.key(raw)?, &parts.headers, body).await
            }
            (Route::Key(raw), &Method::DELETE) => {
                self.delete(&naming()?.key(raw)?, &parts.headers).await
            }
            (Route::Meta(raw), &Method::GET) => {
                let naming = naming()?;
                self.get_meta(naming, &naming.key(raw)?, query).await
            }
            (Route::Meta(raw), &Method::PUT) => {
                let naming = naming()?;
                self.put_meta(naming, &naming.key(raw)?, query, body).await
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
}

/// The proxy applies no transfer coding but `chunked` (which hyper
/// decodes); a body in any other (`gzip, chunked`) would be stored still
/// coded, so such a request is refused, before anything is stored.
fn refuse_transfer_codings(headers: &http::HeaderMap) -> Result<()> {
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let text = value
            .to_str()
            .map_err(|_| Error::bad_request("Transfer-Encoding is not text"))?;
        if let Some(coding) = text
            .split(',')
            .map(str::trim)
            .find(|coding| !coding.eq_ignore_ascii_case("chunked"))
        {
            return Err(Error::new(
                ErrorKind::NotImplemented,
                format!(
                    "transfer coding '{coding}' is not supported; send the body as it is (chunked or with Content-Length)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};

    use super::*;
    use crate::mode::{Consistency, ModeOptions};
    use crate::store::memory::MemoryStore;

    /// An application over a memory store, without a socket.
    fn app(max_body_bytes: u64) -> Arc<App> {
        let mode = Mode::new(
            Arc::new(MemoryStore::new("")),
            &ModeOptions {
                consistency: Consistency::BufferedCas,
                max_body_bytes,
                remembered_versions: NonZeroUsize::new(8).unwrap(),
            },
        );
        let readiness = Readiness::new(Arc::clone(mode.store()), Duration::ZERO);
        Arc::new(App::new(AppParts {
            metrics: Arc::new(Metrics::new(mode.remembered_shared())),
            mode,
            readiness,
            query_limits: QueryLimits::default(),
            selftest: None,
            budget: MemoryBudget::unbounded(),
        }))
    }

    fn request(method: Method, uri: &str, body: &'static str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    async fn text(response: Response<ResponseBody>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_write_and_a_read_in_process() {
        let app = app(1 << 20);
        let put = app
            .clone()
            .handle(request(Method::PUT, "/keys/a/b", "hello"))
            .await;
        assert_eq!(put.status(), StatusCode::NO_CONTENT);
        let written = put.headers()[header::ETAG].clone();
        let get = app
            .clone()
            .handle(request(Method::GET, "/keys/a/b", ""))
            .await;
        assert_eq!(get.status(), StatusCode::OK);
        assert_eq!(get.headers()[header::ETAG], written);
        assert_eq!(get.headers()[header::CONTENT_LENGTH], "5");
        let timing = get.headers()[timing::SERVER_TIMING].to_str().unwrap();
        assert!(timing.starts_with("backend;dur="), "{timing}");
        assert_eq!(text(get).await, "hello");
        let list = app
            .clone()
            .handle(request(Method::GET, "/keys/?prefix=a/", ""))
            .await;
        assert_eq!(text(list).await, r#"{"keys":["a/b"],"prefixes":[]}"#);
        let counted = app.metrics().encode();
        let line = r#"state_proxy_requests_total{route="key",method="PUT",status="204"} 1"#;
        assert!(counted.contains(line), "{counted}");
    }

    #[tokio::test]
    async fn routing_errors_name_the_route_and_its_methods() {
        let app = app(1 << 20);
        let unknown = app
            .clone()
            .handle(request(Method::GET, "/nowhere", ""))
            .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert!(text(unknown).await.contains(r#""error":"not_found""#));
        let wrong = app
            .clone()
            .handle(request(Method::POST, "/keys/k", "x"))
            .await;
        assert_eq!(wrong.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(wrong.headers()[header::ALLOW], "GET, HEAD, PUT, DELETE");
        // HEAD answers carry the status of the error, never a body.
        let missing = app
            .clone()
            .handle(request(Method::HEAD, "/keys/missing", ""))
            .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(text(missing).await, "");
    }

    #[tokio::test]
    async fn a_refused_body_is_drained_and_the_connection_kept() {
        let app = app(4);
        let refused = app
            .clone()
            .handle(request(Method::PUT, "/keys/k", "too long"))
            .await;
        assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(refused.headers().get(header::CONNECTION).is_none());
        assert!(text(refused).await.contains("payload_too_large"));
    }
}

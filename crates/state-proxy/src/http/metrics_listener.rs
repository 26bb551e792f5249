//! The optional TCP listener (`--metrics-addr`) that serves `/metrics`
//! to a standard Prometheus, which cannot scrape a Unix socket. It serves
//! nothing else: the state itself stays on the socket.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response, StatusCode};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use super::body::ResponseBody;
use super::errors::json_error;
use super::response::metrics_response;
use crate::metrics::Metrics;

/// A scrape in flight gets this long to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

pub struct MetricsListener {
    listener: TcpListener,
}

impl MetricsListener {
    pub async fn bind(addr: SocketAddr) -> Result<MetricsListener, String> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("binding the metrics listener on {addr}: {e}"))?;
        Ok(MetricsListener { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves scrapes until `shutdown` completes.
    pub async fn serve(self, metrics: Arc<Metrics>, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "accepting a metrics connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let metrics = Arc::clone(&metrics);
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let answer = scrape(&metrics, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = graceful
                .watch(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    }
}

fn scrape(metrics: &Metrics, method: &Method, path: &str) -> Response<ResponseBody> {
    match (method, path) {
        (&Method::GET | &Method::HEAD, "/metrics") => metrics_response(metrics),
        (_, "/metrics") => json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("{method} is not allowed on /metrics"),
        ),
        _ => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this listener serves /metrics only",
        ),
    }
}

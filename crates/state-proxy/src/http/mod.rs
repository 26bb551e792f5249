//! The protocol layer: a Unix socket, HTTP/1.1 connections, routes.
//!
//! - `socket`: the socket file, claimed at start and released at exit;
//! - this module: the server that accepts connections and hands each
//!   request to the [`App`];
//! - `app`: what every request goes through (routing, body, timing,
//!   metrics); `route`: which resource a path names; `handlers`: one per
//!   route; `conditions`: `If-Match` / `If-None-Match`; `naming`: keys
//!   and parameters, literal or percent-encoded (`X-Key-Encoding`);
//! - `body`, `response`, `errors`: bodies both ways, answers, and errors
//!   as answers (the one place where an error kind meets its status);
//! - `metrics_listener`: `/metrics` over TCP for Prometheus.

mod app;
pub mod body;
mod conditions;
pub mod errors;
mod handlers;
pub mod metrics_listener;
pub mod naming;
mod response;
mod route;
pub mod socket;

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;

pub use app::{App, AppParts};
pub use handlers::QUERY_BODY_MAX;
use socket::BoundSocket;

/// How the socket server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Permissions of the socket file.
    pub socket_mode: u32,
    /// How long requests in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
}

/// A proxy bound to its socket, ready to serve.
pub struct Server {
    socket: BoundSocket,
    app: Arc<App>,
    grace: Duration,
}

impl Server {
    /// Claims the socket (see [`BoundSocket::bind`]).
    pub fn bind(path: &Path, options: &ServerOptions, app: Arc<App>) -> Result<Server, String> {
        Ok(Server {
            socket: BoundSocket::bind(path, options.socket_mode)?,
            app,
            grace: options.shutdown_grace,
        })
    }

    pub fn path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves connections until `shutdown` completes, then stops
    /// accepting, removes the socket file, lets requests in flight finish
    /// within the grace period and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (listener, socket_file) = self.socket.into_parts();
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        builder.keep_alive(true).max_buf_size(256 * 1024);
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // instead of spinning, then accept again.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let app = Arc::clone(&self.app);
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, Infallible>(app.handle(request).await) }
            });
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        socket_file.remove();
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        tokio::select! {
            () = graceful.shutdown() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.grace) => {
                tracing::warn!(grace = ?self.grace, "grace period over, closing remaining connections");
            }
        }
    }
}

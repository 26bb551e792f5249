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
//! - `connections`: the live connections and their limits (timeouts, the
//!   cap, shutdown); `pace`: the pace a request body must keep;
//!   `budget`: the memory budget of bodies held whole;
//! - `metrics_listener`: `/metrics` over TCP for Prometheus.

mod app;
pub mod body;
pub mod budget;
mod conditions;
pub mod connections;
pub mod errors;
mod handlers;
pub mod metrics_listener;
pub mod naming;
pub mod pace;
mod response;
mod route;
pub mod socket;

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

pub use app::{App, AppParts};
use connections::{Command, Connection, ConnectionLimits, Connections, TrackedBody, TrackedIo};
pub use handlers::QUERY_BODY_MAX;
use pace::{BodyPace, PacedBody};
use socket::BoundSocket;

/// How the socket server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Permissions of the socket file.
    pub socket_mode: u32,
    /// How long requests in flight may take to finish at shutdown.
    pub shutdown_grace: Duration,
    /// Timeouts and the connection cap.
    pub connections: ConnectionLimits,
    /// The pace request bodies must keep.
    pub body_pace: BodyPace,
}

impl ServerOptions {
    /// The defaults of `state-proxy serve`, with this mode and grace.
    pub fn new(socket_mode: u32, shutdown_grace: Duration) -> ServerOptions {
        ServerOptions {
            socket_mode,
            shutdown_grace,
            connections: ConnectionLimits {
                header_timeout: Duration::from_secs(30),
                idle_timeout: Duration::from_secs(60),
                write_timeout: Duration::from_secs(60),
                max_connections: 4096,
            },
            body_pace: BodyPace {
                timeout: Duration::from_secs(30),
                min_rate: 1024,
            },
        }
    }
}

/// A proxy bound to its socket, ready to serve.
pub struct Server {
    socket: BoundSocket,
    app: Arc<App>,
    options: ServerOptions,
}

impl Server {
    /// Claims the socket (see [`BoundSocket::bind`]).
    pub fn bind(path: &Path, options: &ServerOptions, app: Arc<App>) -> Result<Server, String> {
        Ok(Server {
            socket: BoundSocket::bind(path, options.socket_mode)?,
            app,
            options: options.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        self.socket.path()
    }

    /// Serves connections until `shutdown` completes, then stops
    /// accepting, removes the socket file, closes idle connections, lets
    /// requests in flight finish within the grace period and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let (listener, socket_file) = self.socket.into_parts();
        let connections = Arc::new(Connections::new(self.options.connections));
        let watcher = tokio::spawn({
            let connections = Arc::clone(&connections);
            async move { connections.watch().await }
        });
        let pace = self.options.body_pace;
        let mut builder = http1::Builder::new();
        // Header and idle timeouts are the registry's (`connections`):
        // hyper's own header timeout would count idle time as header time.
        builder
            .keep_alive(true)
            .max_buf_size(256 * 1024)
            .header_read_timeout(None);
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
            let Some(connection) = connections.admit() else {
                drop(stream);
                continue;
            };
            let app = Arc::clone(&self.app);
            let serving = Arc::clone(&connection);
            let service = service_fn(move |request: Request<Incoming>| {
                let in_flight = serving.begin();
                let request = request.map(|body| PacedBody::new(body, pace));
                // `map`, not an `async` block: the block would hold the
                // request again beside the future that already owns it.
                Arc::clone(&app).handle(request).map(move |response| {
                    Ok::<_, Infallible>(response.map(|body| TrackedBody { body, in_flight }))
                })
            });
            let io = TokioIo::new(TrackedIo::new(stream, Arc::clone(&connection)));
            let served = builder.serve_connection(io, service);
            let connections = Arc::clone(&connections);
            tokio::spawn(async move {
                run_connection(served, &connection).await;
                connections.remove(&connection);
            });
        }
        drop(listener);
        socket_file.remove();
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        connections.drain();
        tokio::select! {
            () = connections.all_closed() => tracing::info!("all connections closed"),
            () = tokio::time::sleep(self.options.shutdown_grace) => {
                tracing::warn!(grace = ?self.options.shutdown_grace, "grace period over, closing remaining connections");
            }
        }
        watcher.abort();
    }
}

/// Serves one connection until it ends, or the server sheds it, a limit
/// closes it ([`Connections::watch`]) or the server shuts down. A plain
/// poll function: what the server asks is an atomic read on each poll
/// ([`Connection::command`]), not a `select!` with a timer.
async fn run_connection<S, B>(
    served: http1::Connection<TokioIo<TrackedIo<UnixStream>>, S>,
    connection: &Connection,
) where
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(served);
    let mut draining = false;
    std::future::poll_fn(|cx| {
        match connection.command(cx) {
            Command::Run => {}
            Command::Close => return Poll::Ready(()),
            Command::Drain if !draining => {
                if !connection.serving() {
                    return Poll::Ready(());
                }
                // Once: hyper closes after the answer in progress, which
                // is then no longer counted as served but may still be
                // in hyper's buffer.
                served.as_mut().graceful_shutdown();
                draining = true;
            }
            Command::Drain => {}
        }
        served.as_mut().poll(cx).map(|ended| {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        })
    })
    .await
}

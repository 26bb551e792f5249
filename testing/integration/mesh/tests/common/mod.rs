//! In-process pieces the mesh's tests share: a fake state proxy on a
//! Unix socket that records requests and answers as told, and a real
//! runtime served in process on a temporary socket directory.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::json;
use state_client::Client;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use asya_mesh::runtime::{self, READY_FILE, SOCKET_NAME};
use asya_mesh::sidecar::invoke::{Answer, read_answer};

/// What the fake proxy saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub chunked: bool,
    pub body: Bytes,
}

/// A fake state proxy: `/healthz` and `PUT /keys/...`, answering PUTs
/// with the status in `status`.
pub struct FakeProxy {
    pub seen: Mutex<Vec<Seen>>,
    pub status: AtomicU16,
}

impl FakeProxy {
    pub fn start(socket: &Path) -> Arc<FakeProxy> {
        let proxy = Arc::new(FakeProxy {
            seen: Mutex::new(Vec::new()),
            status: AtomicU16::new(204),
        });
        let listener = UnixListener::bind(socket).unwrap();
        let shared = Arc::clone(&proxy);
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let proxy = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let proxy = Arc::clone(&proxy);
                        async move { Ok::<_, std::convert::Infallible>(proxy.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        proxy
    }

    async fn answer(&self, request: Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let chunked = request.headers().get("transfer-encoding").is_some();
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let status = if path == "/healthz" {
            200
        } else {
            self.seen.lock().push(Seen {
                method,
                path,
                chunked,
                body,
            });
            self.status.load(Ordering::SeqCst)
        };
        let mut response = hyper::Response::new(Full::new(Bytes::from(match status {
            204 => String::new(),
            _ => json!({"error": "unavailable", "message": "storage is down"}).to_string(),
        })));
        *response.status_mut() = StatusCode::from_u16(status).unwrap();
        if status == 204 {
            response
                .headers_mut()
                .insert("etag", "\"v1\"".parse().unwrap());
        }
        response
    }
}

pub struct Runtime {
    pub dir: tempfile::TempDir,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Runtime {
    /// Starts a runtime with `handler` (and, for the crew, a mount named
    /// `results` at `/state/results` with `options`).
    pub fn start(handler: &str, mount_options: Option<&str>) -> Runtime {
        let dir = tempfile::tempdir().unwrap();
        // Configured directly, not through the environment, so tests in
        // parallel do not share settings.
        let socket_dir = dir.path().to_owned();
        let state_dir = dir.path().join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        let mounts = mount_options
            .map(|options| {
                asya_mesh::runtime::mounts::Mounts::parse(
                    &format!("results:/state/results:{options}"),
                    &state_dir,
                )
                .unwrap()
            })
            .unwrap_or_default();
        let config = runtime::Config {
            socket_dir,
            handler_name: handler.into(),
            handler: runtime::handlers::Handler::by_name(handler).unwrap(),
            mounts,
            persistence_mount: mount_options.map(|_| PathBuf::from("/state/results")),
            shutdown_grace: Duration::from_secs(5),
        };
        let stop = CancellationToken::new();
        let done = tokio::spawn(runtime::run(config, stop.clone().cancelled_owned()));
        Runtime { dir, stop, done }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn wait_ready(&self) {
        for _ in 0..500 {
            if self.path(READY_FILE).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("runtime-ready never appeared");
    }

    pub async fn invoke(&self, body: &str) -> Answer {
        let client = Client::new(self.path(SOCKET_NAME));
        let response = client
            .raw(Method::POST, "/invoke", HeaderMap::new(), body.to_owned())
            .await
            .unwrap();
        let stream = response
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/event-stream"));
        read_answer(response.status, stream, &response.body).unwrap()
    }

    pub async fn stop(self) {
        let (socket, ready) = (self.path(SOCKET_NAME), self.path(READY_FILE));
        self.stop.cancel();
        self.done.await.unwrap().unwrap();
        assert!(!socket.exists(), "socket left behind");
        assert!(!ready.exists(), "runtime-ready left behind");
    }
}

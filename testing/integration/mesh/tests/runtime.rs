//! The runtime over its real Unix socket, in process: every answer shape
//! of `/invoke`, the readiness gate on the state proxy, and checkpoints
//! as the proxy sees them (path, framing), including a proxy that
//! refuses. The proxy here is an in-process fake that records requests
//! and answers as told.

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
use serde_json::{Value, json};
use state_client::Client;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use asya_mesh::runtime::{self, READY_FILE, SOCKET_NAME};
use asya_mesh::sidecar::invoke::{Answer, read_answer};

/// What the fake proxy saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    chunked: bool,
    body: Bytes,
}

/// A fake state proxy: `/healthz` and `PUT /keys/...`, answering PUTs
/// with the status in `status`.
struct FakeProxy {
    seen: Mutex<Vec<Seen>>,
    status: AtomicU16,
}

impl FakeProxy {
    fn start(socket: &Path) -> Arc<FakeProxy> {
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

struct Runtime {
    dir: tempfile::TempDir,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Runtime {
    /// Starts a runtime with `handler` (and, for the crew, a mount named
    /// `results` at `/state/results` with `options`).
    fn start(handler: &str, mount_options: Option<&str>) -> Runtime {
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

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn wait_ready(&self) {
        for _ in 0..500 {
            if self.path(READY_FILE).exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("runtime-ready never appeared");
    }

    async fn invoke(&self, body: &str) -> Answer {
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

    async fn stop(self) {
        let (socket, ready) = (self.path(SOCKET_NAME), self.path(READY_FILE));
        self.stop.cancel();
        self.done.await.unwrap().unwrap();
        assert!(!socket.exists(), "socket left behind");
        assert!(!ready.exists(), "runtime-ready left behind");
    }
}

fn envelope(payload: Value) -> String {
    json!({"id": "task-1", "route": {"prev": [], "curr": "a", "next": ["b"]},
           "payload": payload, "status": {"phase": "pending"}, "extra": {"kept": true}})
    .to_string()
}

#[tokio::test]
async fn payload_handlers_answer_every_shape() {
    let runtime = Runtime::start("echo", None);
    runtime.wait_ready().await;

    let Answer::Frames(frames) = runtime.invoke(&envelope(json!({"message": "hi"}))).await else {
        panic!("frames expected");
    };
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].payload, json!({"echoed": "hi"}));
    // The runtime shifted the route.
    assert_eq!(frames[0].route.prev, ["a"]);
    assert_eq!(frames[0].route.curr, "b");
    assert!(frames[0].route.next.is_empty());

    let fan_out = runtime
        .invoke(&envelope(json!({"message": "hi", "repeat": 2})))
        .await;
    assert!(matches!(fan_out, Answer::Frames(f) if f.len() == 2));
    assert_eq!(
        runtime
            .invoke(&envelope(json!({"message": "hi", "repeat": 0})))
            .await,
        Answer::Empty
    );
    let Answer::Failed(raised) = runtime.invoke(&envelope(json!({}))).await else {
        panic!("a 500 expected");
    };
    assert_eq!(raised["error"], "processing_error");
    assert_eq!(raised["details"]["type"], "KeyError");
    let Answer::Refused(refused) = runtime.invoke("{\"route\": 1}").await else {
        panic!("a 400 expected");
    };
    assert_eq!(refused["error"], "msg_parsing_error");

    let healthz = Client::new(runtime.path(SOCKET_NAME)).healthz().await;
    assert!(healthz.is_ok());
    runtime.stop().await;
}

#[tokio::test]
async fn the_crew_waits_for_its_proxy_then_checkpoints_through_it() {
    let runtime = Runtime::start("x-sink", Some("write=buffered"));
    // No proxy yet: serving, but not ready.
    for _ in 0..500 {
        if runtime.path(SOCKET_NAME).exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let healthz = Client::new(runtime.path(SOCKET_NAME))
        .raw(Method::GET, "/healthz", HeaderMap::new(), Bytes::new())
        .await
        .unwrap();
    assert_eq!(healthz.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!runtime.path(READY_FILE).exists());

    let proxy = FakeProxy::start(&runtime.path("state/results.sock"));
    runtime.wait_ready().await;

    let mut succeeded: Value = serde_json::from_str(&envelope(json!({"echoed": "hi"}))).unwrap();
    succeeded["status"]["phase"] = json!("succeeded");
    assert_eq!(runtime.invoke(&succeeded.to_string()).await, Answer::Empty);
    let seen = proxy.seen.lock().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, Method::PUT);
    assert_eq!(seen[0].path, "/keys/succeeded/task-1.json");
    assert!(!seen[0].chunked);
    let stored: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        stored,
        json!({"id": "task-1", "route": {"prev": [], "curr": "a"},
               "payload": {"echoed": "hi"}, "status": {"phase": "succeeded"}})
    );

    // A proxy that cannot take it fails the invocation.
    proxy.status.store(503, Ordering::SeqCst);
    let Answer::Failed(error) = runtime.invoke(&succeeded.to_string()).await else {
        panic!("a failed checkpoint must fail the invocation");
    };
    assert_eq!(error["details"]["type"], "CheckpointError");
    assert_eq!(error["details"]["proxy_status"], 503);
    runtime.stop().await;
}

#[tokio::test]
async fn passthrough_mounts_stream_the_checkpoint_chunked() {
    let runtime = Runtime::start("x-sump", Some("write=passthrough"));
    let proxy = FakeProxy::start(&runtime.path("state/results.sock"));
    runtime.wait_ready().await;
    let big = "x".repeat(200 * 1024);
    let mut failed: Value = serde_json::from_str(&envelope(json!({"error": big}))).unwrap();
    failed["status"]["phase"] = json!("failed");
    assert_eq!(runtime.invoke(&failed.to_string()).await, Answer::Empty);
    let seen = proxy.seen.lock().clone();
    assert_eq!(seen[0].path, "/keys/failed/task-1.json");
    assert!(seen[0].chunked, "a passthrough mount streams its writes");
    let stored: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        stored["payload"]["error"].as_str().unwrap().len(),
        big.len()
    );
    runtime.stop().await;
}

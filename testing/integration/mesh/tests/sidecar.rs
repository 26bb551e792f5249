//! The sidecar in process against a real runtime (its Unix socket), an
//! in-memory transport and a fake gateway: what can never succeed ends
//! the task and is acknowledged, what may pass is handed back for
//! redelivery.
//!
//! - a checkpoint the proxy refuses with 4xx: x-sink sends x-sump a small
//!   failure, x-sump reports the failure to the gateway; acknowledged,
//!   written once;
//! - a checkpoint the proxy cannot take now (503): retried, never acked;
//! - a failure envelope too large for the transport: a small stand-in
//!   goes to x-sump instead, and if even that is refused, the message is
//!   given up (acked);
//! - a runtime answer longer than the sidecar reads: a failure to x-sump.

mod common;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use asya_mesh::sidecar::{self, Config, routing::Router};
use asya_mesh::transport::{self, Delivery, Settle, Transport, TransportError};
use asya_mesh::web::{self, Handler, Listener};
use common::{FakeProxy, Runtime};

/// Queues in memory; bodies longer than `max_body` are refused as a
/// real transport refuses them (SQS: 256 KiB).
struct Memory {
    queues: Mutex<HashMap<String, VecDeque<Bytes>>>,
    max_body: usize,
    acked: AtomicUsize,
    retried: AtomicUsize,
}

impl Memory {
    fn new(max_body: usize) -> Arc<Memory> {
        Arc::new(Memory {
            queues: Mutex::default(),
            max_body,
            acked: AtomicUsize::new(0),
            retried: AtomicUsize::new(0),
        })
    }

    fn push(&self, actor: &str, body: Value) {
        self.queues
            .lock()
            .entry(actor.into())
            .or_default()
            .push_back(body.to_string().into());
    }

    fn taken(&self, actor: &str) -> Vec<Value> {
        let mut queues = self.queues.lock();
        let queue = queues.entry(actor.into()).or_default();
        queue
            .drain(..)
            .map(|b| serde_json::from_slice(&b).unwrap())
            .collect()
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    fn retried(&self) -> usize {
        self.retried.load(Ordering::SeqCst)
    }
}

struct Settled {
    memory: Arc<Memory>,
    actor: String,
    body: Bytes,
}

#[async_trait]
impl Settle for Settled {
    async fn ack(self: Box<Self>) -> transport::Result<()> {
        self.memory.acked.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn retry(self: Box<Self>) -> transport::Result<()> {
        self.memory.retried.fetch_add(1, Ordering::SeqCst);
        let mut queues = self.memory.queues.lock();
        queues.entry(self.actor).or_default().push_back(self.body);
        Ok(())
    }
}

/// The transport of one test, shared by the sidecar and the test.
struct Shared(Arc<Memory>);

#[async_trait]
impl Transport for Shared {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn create_queue(&self, _actor: &str) -> transport::Result<()> {
        Ok(())
    }

    async fn receive(&self, actor: &str, max: usize) -> transport::Result<Vec<Delivery>> {
        let taken: Vec<Bytes> = {
            let mut queues = self.0.queues.lock();
            let queue = queues.entry(actor.into()).or_default();
            let n = queue.len().min(max);
            queue.drain(..n).collect()
        };
        if taken.is_empty() {
            // The poll time of this transport.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(taken
            .into_iter()
            .map(|body| {
                let settle = Settled {
                    memory: Arc::clone(&self.0),
                    actor: actor.to_owned(),
                    body: body.clone(),
                };
                Delivery::new(body, Box::new(settle))
            })
            .collect())
    }

    async fn send(&self, actor: &str, body: Bytes) -> transport::Result<()> {
        if body.len() > self.0.max_body {
            return Err(TransportError::Rejected(format!(
                "{} bytes is over the limit of {}",
                body.len(),
                self.0.max_body
            )));
        }
        self.0
            .queues
            .lock()
            .entry(actor.into())
            .or_default()
            .push_back(body);
        Ok(())
    }
}

/// A gateway that records final reports and answers 200.
struct FakeGateway {
    url: String,
    reports: Arc<Mutex<Vec<Value>>>,
    stop: CancellationToken,
}

impl FakeGateway {
    async fn start() -> FakeGateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&reports);
        let handler: Handler = Arc::new(move |request| {
            let seen = Arc::clone(&seen);
            Box::pin(async move {
                let body = web::read_body(request, 1 << 20).await.unwrap();
                seen.lock().push(serde_json::from_slice(&body).unwrap());
                web::json(StatusCode::OK, &json!({"status": "ok"}))
            })
        });
        let stop = CancellationToken::new();
        tokio::spawn(web::serve(
            Listener::Tcp(listener),
            handler,
            stop.clone().cancelled_owned(),
            Duration::from_secs(1),
        ));
        FakeGateway { url, reports, stop }
    }
}

struct Sidecar {
    stop: CancellationToken,
    done: tokio::task::JoinHandle<Result<(), String>>,
}

impl Sidecar {
    fn start(
        actor: &str,
        runtime: &Runtime,
        memory: &Arc<Memory>,
        gateway: Option<&FakeGateway>,
        max_answer_bytes: usize,
    ) -> Sidecar {
        let config = Config {
            router: Router {
                actor: actor.into(),
                sink: "x-sink".into(),
                sump: "x-sump".into(),
            },
            is_end_actor: actor.starts_with("x-"),
            gateway_url: gateway.map(|g| g.url.clone()),
            socket_dir: runtime.dir.path().to_owned(),
            actor_timeout: Duration::from_secs(10),
            concurrency: 4,
            retry_delay: Duration::from_millis(20),
            shutdown_grace: Duration::from_secs(5),
            max_answer_bytes,
        };
        let stop = CancellationToken::new();
        let transport: Arc<dyn Transport> = Arc::new(Shared(Arc::clone(memory)));
        let done = tokio::spawn(sidecar::run(config, transport, stop.clone()));
        Sidecar { stop, done }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.done.await.unwrap().unwrap();
    }
}

/// Waits (polling, up to 10 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 10 s");
}

fn envelope(id: &str, curr: &str, phase: &str, payload: Value) -> Value {
    json!({"id": id, "route": {"prev": ["test-echo"], "curr": curr, "next": []},
           "payload": payload, "status": {"phase": phase}})
}

const UNLIMITED: usize = 1 << 30;

#[tokio::test]
async fn a_checkpoint_refused_with_4xx_ends_the_task_failed_and_is_acked() {
    let memory = Memory::new(UNLIMITED);
    let gateway = FakeGateway::start().await;

    // x-sink: its proxy refuses the write as too large.
    let sink = Runtime::start("x-sink", Some("write=buffered"));
    let sink_proxy = FakeProxy::start(&sink.path("state/results.sock"));
    sink_proxy.status.store(413, Ordering::SeqCst);
    sink.wait_ready().await;
    let sink_sidecar = Sidecar::start("x-sink", &sink, &memory, Some(&gateway), UNLIMITED);
    memory.push(
        "x-sink",
        envelope("t-413", "", "succeeded", json!({"echoed": "x"})),
    );
    until("x-sink acks", || memory.acked() == 1).await;
    assert_eq!(memory.retried(), 0, "a 413 is not retried");
    assert_eq!(sink_proxy.seen.lock().len(), 1, "written once");
    let to_sump = memory.taken("x-sump");
    assert_eq!(to_sump.len(), 1, "{to_sump:?}");
    let stand_in = &to_sump[0];
    assert_eq!(stand_in["id"], "t-413");
    assert_eq!(stand_in["status"]["phase"], "failed");
    assert_eq!(stand_in["status"]["reason"], "CheckpointError");
    assert_eq!(stand_in["payload"]["original_payload"], Value::Null);
    let message = stand_in["status"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("x-sink of t-413 failed"), "{message}");
    // x-sink leaves the report to x-sump, which stores the stand-in.
    assert!(gateway.reports.lock().is_empty());

    // A proxy that is only unavailable: handed back again and again.
    sink_proxy.status.store(503, Ordering::SeqCst);
    memory.push(
        "x-sink",
        envelope("t-503", "", "succeeded", json!({"echoed": "y"})),
    );
    until("x-sink retries", || memory.retried() >= 3).await;
    assert_eq!(memory.acked(), 1, "an outage is never acked");
    assert!(memory.taken("x-sump").is_empty());
    sink_sidecar.stop().await;

    // x-sump: its proxy refuses (400): it reports the failure itself.
    let sump = Runtime::start("x-sump", Some("write=buffered"));
    let sump_proxy = FakeProxy::start(&sump.path("state/results.sock"));
    sump_proxy.status.store(400, Ordering::SeqCst);
    sump.wait_ready().await;
    let sump_sidecar = Sidecar::start("x-sump", &sump, &memory, Some(&gateway), UNLIMITED);
    memory.push("x-sump", stand_in.clone());
    until("x-sump acks", || memory.acked() == 2).await;
    let reports = gateway.reports.lock().clone();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["id"], "t-413");
    assert_eq!(reports[0]["status"], "failed");
    let error = reports[0]["error"].as_str().unwrap();
    assert!(error.contains("x-sump of t-413 failed"), "{error}");
    sump_sidecar.stop().await;
    gateway.stop.cancel();
    sink.stop().await;
    sump.stop().await;
}

#[tokio::test]
async fn a_failure_too_large_for_the_transport_becomes_a_small_one() {
    // The failure carries the original payload and the error: more than
    // the transport takes, while the input fitted.
    let max = 4096;
    let memory = Memory::new(max);
    let runtime = Runtime::start("error", None);
    runtime.wait_ready().await;
    let actor = Sidecar::start("test-error", &runtime, &memory, None, UNLIMITED);
    let input = envelope(
        "t-big",
        "test-error",
        "pending",
        json!({"should_fail": true, "padding": "p".repeat(3700)}),
    );
    assert!(input.to_string().len() < max);
    memory.push("test-error", input);
    until("acked", || memory.acked() == 1).await;
    assert_eq!(memory.retried(), 0);
    let to_sump = memory.taken("x-sump");
    assert_eq!(to_sump.len(), 1);
    assert_eq!(to_sump[0]["id"], "t-big");
    assert_eq!(to_sump[0]["status"]["reason"], "TransportError");
    let message = to_sump[0]["status"]["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("Intentional test failure (sending to x-sump: "),
        "{message}"
    );
    actor.stop().await;

    // A transport that takes not even the stand-in: given up, not
    // retried forever (the concurrency permit comes back: the next one
    // is handled too).
    let tiny = Memory::new(64);
    let actor = Sidecar::start("test-error", &runtime, &tiny, None, UNLIMITED);
    for id in ["t-1", "t-2", "t-3", "t-4", "t-5"] {
        tiny.push(
            "test-error",
            envelope(id, "test-error", "pending", json!({"should_fail": true})),
        );
    }
    until("all acked", || tiny.acked() == 5).await;
    assert_eq!(tiny.retried(), 0);
    assert!(tiny.taken("x-sump").is_empty());
    actor.stop().await;
    runtime.stop().await;
}

#[tokio::test]
async fn an_answer_longer_than_the_sidecar_reads_is_a_runtime_error() {
    let memory = Memory::new(UNLIMITED);
    let runtime = Runtime::start("large-payload", None);
    runtime.wait_ready().await;
    let actor = Sidecar::start("test-large-payload", &runtime, &memory, None, 64 * 1024);
    memory.push(
        "test-large-payload",
        envelope(
            "t-long",
            "test-large-payload",
            "pending",
            json!({"size_kb": 100}),
        ),
    );
    memory.push(
        "test-large-payload",
        envelope(
            "t-short",
            "test-large-payload",
            "pending",
            json!({"size_kb": 1}),
        ),
    );
    until("acked", || memory.acked() == 2).await;
    let to_sump = memory.taken("x-sump");
    assert_eq!(to_sump.len(), 1, "{to_sump:?}");
    assert_eq!(to_sump[0]["id"], "t-long");
    assert_eq!(to_sump[0]["status"]["reason"], "RuntimeError");
    let message = to_sump[0]["status"]["error"]["message"].as_str().unwrap();
    assert!(message.contains("longer than 65536 bytes"), "{message}");
    let to_sink = memory.taken("x-sink");
    assert_eq!(to_sink.len(), 1);
    assert_eq!(to_sink[0]["payload"]["bytes"], 1024);
    actor.stop().await;
    runtime.stop().await;
}

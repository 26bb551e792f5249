//! The runtime over its real Unix socket, in process: every answer shape
//! of `/invoke`, the readiness gate on the state proxy, and checkpoints
//! as the proxy sees them (path, framing), including a proxy that
//! refuses. The proxy here is an in-process fake that records requests
//! and answers as told (tests/common).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use state_client::Client;

use asya_mesh::runtime::{READY_FILE, SOCKET_NAME};
use asya_mesh::sidecar::invoke::Answer;
use common::{FakeProxy, Runtime};

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

#[tokio::test]
async fn a_size_past_the_cap_is_refused_with_400_before_any_work() {
    let runtime = Runtime::start("large-payload", None);
    runtime.wait_ready().await;
    let huge = envelope(json!({"size_kb": u64::MAX / 1024}));
    let Answer::Refused(refused) = runtime.invoke(&huge).await else {
        panic!("a 400 expected");
    };
    assert_eq!(refused["error"], "msg_parsing_error");
    assert_eq!(refused["details"]["type"], "ValidationError");
    assert_eq!(
        refused["details"]["max_size_kb"],
        asya_mesh::runtime::handlers::MAX_LARGE_PAYLOAD_KB
    );
    // Still serving.
    let small = runtime.invoke(&envelope(json!({"size_kb": 1}))).await;
    assert!(matches!(small, Answer::Frames(f) if f[0].payload["bytes"] == 1024));
    runtime.stop().await;
}

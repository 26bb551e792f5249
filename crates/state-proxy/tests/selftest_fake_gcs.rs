//! `state-proxy selftest` and `serve --selftest`, the real binary, against
//! a small in-process fake of the GCS JSON API on 127.0.0.1 that can be
//! told to ignore `ifGenerationMatch`, as some emulators do. Against the
//! honest fake the self-test passes; against the dishonest one it must
//! fail with a table naming each guarantee that is not enforced.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Output;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use percent_encoding::percent_decode_str;
use serde_json::json;
use tokio::net::TcpListener;

const BUCKET: &str = "selftest-bucket";

#[derive(Default)]
struct Objects {
    /// Object name → (content, generation).
    by_name: BTreeMap<String, (Bytes, u64)>,
    last_generation: u64,
}

/// The fake's state; `honest` says whether preconditions are enforced.
struct FakeGcs {
    honest: bool,
    objects: Mutex<Objects>,
}

type Answer = Response<Full<Bytes>>;

fn answer(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

fn json_answer(value: serde_json::Value) -> Answer {
    let mut response = answer(StatusCode::OK, value.to_string());
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

fn gcs_error(status: StatusCode, message: &str) -> Answer {
    answer(
        status,
        json!({"error": {"code": status.as_u16(), "message": message}}).to_string(),
    )
}

fn resource(name: &str, data: &Bytes, generation: u64) -> serde_json::Value {
    json!({
        "name": name,
        "bucket": BUCKET,
        "generation": generation.to_string(),
        "metageneration": "1",
        "size": data.len().to_string(),
        "contentType": "application/octet-stream",
        "storageClass": "STANDARD",
    })
}

/// The parts of a `multipart/related` upload: the resource JSON, then the
/// content.
fn multipart(content_type: &str, body: &[u8]) -> Option<(serde_json::Value, Bytes)> {
    let boundary = content_type.split("boundary=").nth(1)?.trim();
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        parts.push(&rest[..at]);
        rest = &rest[at + delimiter.len()..];
    }
    // parts[0] is the preamble (empty); each part has headers, a blank
    // line, the content and the CRLF before the next delimiter.
    let content = |part: &[u8]| -> Option<Vec<u8>> {
        let start = find(part, b"\r\n\r\n")? + 4;
        Some(part[start..].strip_suffix(b"\r\n")?.to_vec())
    };
    let meta = serde_json::from_slice(&content(parts.get(1)?)?).ok()?;
    let data = Bytes::from(content(parts.get(2)?)?);
    Some((meta, data))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

impl FakeGcs {
    /// Whether `ifGenerationMatch` holds for the current object.
    fn condition_holds(&self, current: Option<u64>, if_generation: Option<u64>) -> bool {
        match (self.honest, if_generation) {
            (false, _) | (true, None) => true,
            (true, Some(0)) => current.is_none(),
            (true, Some(expected)) => current == Some(expected),
        }
    }

    async fn serve(&self, request: Request<Incoming>) -> Answer {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let query: BTreeMap<String, String> =
            form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let if_generation = query
            .get("ifGenerationMatch")
            .and_then(|g| g.parse::<u64>().ok());
        let content_type = request
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = request.into_body().collect().await.unwrap().to_bytes();

        let upload = format!("/upload/storage/v1/b/{BUCKET}/o");
        let objects = format!("/storage/v1/b/{BUCKET}/o");
        if method == Method::POST && path == upload {
            let Some((meta, data)) = multipart(&content_type, &body) else {
                return gcs_error(StatusCode::BAD_REQUEST, "not a multipart upload");
            };
            let name = meta["name"].as_str().unwrap_or_default().to_owned();
            let mut state = self.objects.lock();
            let current = state.by_name.get(&name).map(|(_, g)| *g);
            if !self.condition_holds(current, if_generation) {
                return gcs_error(StatusCode::PRECONDITION_FAILED, "conditionNotMet");
            }
            state.last_generation += 1;
            let generation = state.last_generation;
            let answer = resource(&name, &data, generation);
            state.by_name.insert(name, (data, generation));
            return json_answer(answer);
        }
        if method == Method::GET && path == objects {
            let prefix = query.get("prefix").cloned().unwrap_or_default();
            let state = self.objects.lock();
            let items: Vec<_> = state
                .by_name
                .keys()
                .filter(|name| name.starts_with(&prefix))
                .map(|name| json!({"name": name}))
                .collect();
            return json_answer(json!({"kind": "storage#objects", "items": items}));
        }
        let Some(encoded) = path.strip_prefix(&format!("{objects}/")) else {
            return gcs_error(StatusCode::NOT_FOUND, "no such route in the fake");
        };
        let name = percent_decode_str(encoded).decode_utf8_lossy().into_owned();
        let mut state = self.objects.lock();
        let current = state.by_name.get(&name).cloned();
        match (method, current) {
            (Method::GET, Some((data, generation))) => {
                if query.get("alt").map(String::as_str) == Some("media") {
                    let mut response = answer(StatusCode::OK, data);
                    response
                        .headers_mut()
                        .insert("x-goog-generation", generation.into());
                    response
                } else {
                    json_answer(resource(&name, &data, generation))
                }
            }
            (Method::DELETE, Some((_, generation))) => {
                if !self.condition_holds(Some(generation), if_generation) {
                    return gcs_error(StatusCode::PRECONDITION_FAILED, "conditionNotMet");
                }
                state.by_name.remove(&name);
                answer(StatusCode::NO_CONTENT, "")
            }
            (Method::GET | Method::DELETE, None) => {
                gcs_error(StatusCode::NOT_FOUND, "No such object")
            }
            _ => gcs_error(StatusCode::METHOD_NOT_ALLOWED, "not in the fake"),
        }
    }
}

/// Starts the fake on a free port of 127.0.0.1.
async fn start_fake(honest: bool) -> (SocketAddr, Arc<FakeGcs>) {
    let fake = Arc::new(FakeGcs {
        honest,
        objects: Mutex::default(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = Arc::clone(&fake);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let fake = Arc::clone(&serving);
            let service = service_fn(move |request| {
                let fake = Arc::clone(&fake);
                async move { Ok::<_, Infallible>(fake.serve(request).await) }
            });
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, fake)
}

/// Runs the real binary with the gcs connector pointed at the fake.
async fn proxy(addr: SocketAddr, args: &[&str], socket: &std::path::Path) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_state-proxy"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ASYA_CONNECTOR", "gcs-buffered-cas")
        .env("STORAGE_EMULATOR_HOST", format!("http://{addr}"))
        .env("STATE_BUCKET", BUCKET)
        .env("STATE_PREFIX", "tenant")
        .env("STATE_BACKEND_TIMEOUT_SECS", "10")
        .env("CONNECTOR_SOCKET", socket)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap()
}

/// The result column of a check's row in the table.
fn result_of<'t>(table: &'t str, check: &str) -> Option<&'t str> {
    table.lines().find_map(|line| {
        let mut columns = line.split_whitespace();
        (columns.next() == Some(check)).then(|| columns.next())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_passes_against_an_honest_backend_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start_fake(true).await;
    let output = proxy(addr, &["selftest"], &dir.path().join("unused.sock")).await;
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for check in [
        "create_if_absent",
        "stale_if_match",
        "if_match_missing_key",
        "conditional_delete",
        "create_race",
        "cleanup",
    ] {
        assert_eq!(result_of(&table, check), Some("pass"), "{check}:\n{table}");
    }
    assert!(table.contains("selftest passed"), "{table}");
    assert!(
        fake.objects.lock().by_name.is_empty(),
        "scratch objects left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selftest_fails_with_a_table_when_preconditions_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, fake) = start_fake(false).await;
    let output = proxy(addr, &["selftest"], &dir.path().join("unused.sock")).await;
    let table = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{table}\n{stderr}");
    println!("{table}");
    for check in [
        "create_if_absent",
        "stale_if_match",
        "if_match_missing_key",
        "create_race",
    ] {
        assert_eq!(result_of(&table, check), Some("FAIL"), "{check}:\n{table}");
    }
    // The gcs store compares generations itself before a conditional
    // delete, so a stale delete is refused even here.
    assert_eq!(
        result_of(&table, "conditional_delete"),
        Some("pass"),
        "{table}"
    );
    assert_eq!(result_of(&table, "cleanup"), Some("pass"), "{table}");
    assert!(table.contains("SUCCEEDED"), "{table}");
    assert!(table.contains("selftest FAILED: 4 guarantee(s)"), "{table}");
    assert!(
        stderr.contains("selftest failed: create_if_absent, stale_if_match"),
        "{stderr}"
    );
    assert!(fake.objects.lock().by_name.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_selftest_refuses_to_start_on_a_dishonest_backend() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("proxy.sock");
    let (addr, _fake) = start_fake(false).await;
    let output = proxy(addr, &["serve", "--selftest"], &socket).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refusing to start"), "{stderr}");
    assert!(stderr.contains("create_if_absent"), "{stderr}");
    assert!(!socket.exists(), "the socket was bound before the selftest");
}

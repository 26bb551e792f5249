//! The integration tests: tasks through the gateway, results checked in
//! the storage emulator itself (never through a proxy). Both buckets are
//! emptied before every test, listing every page.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};
use serde_json::{Value, json};

use crate::client::Gateway;
use crate::storage::{self, Storage};

/// How long a task may take to become final.
const FINAL_WITHIN: Duration = Duration::from_secs(60);

pub type CaseResult = Result<(), String>;
type CaseFn = for<'a> fn(&'a Ctx<'a>) -> Pin<Box<dyn Future<Output = CaseResult> + Send + 'a>>;

pub struct Case {
    pub name: &'static str,
    pub run: CaseFn,
    /// Needs [`Ctx::outage`].
    pub needs_outage: bool,
}

/// Makes storage unreachable for the crew's proxies, and reachable again.
pub trait Outage: Sync {
    fn cut(&self);
    fn restore(&self);
    /// Connections to storage refused or cut so far.
    fn refused(&self) -> u64;
}

/// What a test sees.
pub struct Ctx<'a> {
    pub gateway: &'a Gateway,
    /// x-sink's storage.
    pub results: &'a dyn Storage,
    /// x-sump's storage.
    pub errors: &'a dyn Storage,
    pub outage: Option<&'a dyn Outage>,
    /// Size of the large-payload test on this transport.
    pub large_payload_kb: u64,
}

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

macro_rules! case {
    ($name:ident) => {
        case!($name, false)
    };
    ($name:ident, $needs_outage:expr) => {
        Case {
            name: stringify!($name),
            run: |cx| Box::pin($name(cx)),
            needs_outage: $needs_outage,
        }
    };
}

pub fn all() -> Vec<Case> {
    vec![
        case!(echo),
        case!(pipeline),
        case!(error),
        case!(large_payload),
        case!(concurrent_tasks),
        case!(fan_out),
        case!(empty_answer),
        case!(deadline),
        case!(gateway_api),
        case!(storage_outage, true),
        case!(checkpoint_refused, true),
        case!(cleanup_pages),
    ]
}

/// The x-sink proxy's body limit under `run` (`STATE_MAX_BODY_BYTES`, in
/// KiB): above the profile's large payload, so that test passes, and
/// below what `checkpoint_refused` sends.
pub fn sink_max_body_kb(large_payload_kb: u64) -> u64 {
    large_payload_kb + 16
}

/// Empties both crew buckets (every page).
pub async fn clean(results: &dyn Storage, errors: &dyn Storage) -> CaseResult {
    storage::empty(results).await?;
    storage::empty(errors).await?;
    Ok(())
}

/// A string no other test or run uses.
fn unique(what: &str) -> String {
    format!("{what}-{}", asya_mesh::envelope::new_id())
}

/// The object at `key` as JSON; an error when it is not there.
async fn object(storage: &dyn Storage, key: &str) -> Result<Value, String> {
    let bytes = storage
        .read(key)
        .await?
        .ok_or_else(|| format!("{key} is not in {}", storage.describe()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{key} is not JSON: {e}"))
}

/// The storage holds exactly these keys, besides objects of tasks that
/// earlier tests submitted: a message of theirs delivered once more after
/// its test (its acknowledgement lost in a disruption) is stored again
/// under its own name, which is what must happen.
async fn exactly(cx: &Ctx<'_>, storage: &dyn Storage, expected: &[String]) -> CaseResult {
    let found: BTreeSet<String> = storage
        .list()
        .await?
        .keys
        .into_iter()
        .filter(|key| !cx.gateway.submitted_earlier(task_of(key)))
        .collect();
    let expected: BTreeSet<String> = expected.iter().cloned().collect();
    ensure!(
        found == expected,
        "{} holds {found:?}, expected {expected:?}",
        storage.describe()
    );
    Ok(())
}

/// The task id in a crew key (`succeeded/<id>.json`).
fn task_of(key: &str) -> &str {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.strip_suffix(".json").unwrap_or(name)
}

/// Polls until the storage holds `count` keys.
async fn wait_for_keys(
    storage: &dyn Storage,
    count: usize,
    within: Duration,
) -> Result<Vec<String>, String> {
    let deadline = Instant::now() + within;
    loop {
        let keys = storage.list().await?.keys;
        if keys.len() >= count || Instant::now() > deadline {
            return Ok(keys);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A value for a message, cut short (a task can carry megabytes).
pub fn brief(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

/// Submits a task and waits until it is final with `status`; its id and
/// the task.
async fn finished(
    gateway: &Gateway,
    tool: &str,
    arguments: Value,
    status: &str,
) -> Result<(String, Value), String> {
    let id = gateway.call(tool, arguments).await?;
    let task = gateway.wait_final(&id, FINAL_WITHIN).await?;
    ensure!(status_of(&task) == status, "task: {}", brief(&task));
    Ok((id, task))
}

pub fn status_of(task: &Value) -> &str {
    task["status"].as_str().unwrap_or("")
}

/// Whether a task has ended, either way.
pub fn is_final(task: &Value) -> bool {
    matches!(status_of(task), "succeeded" | "failed")
}

async fn echo(cx: &Ctx<'_>) -> CaseResult {
    let message = unique("hello");
    let gateway = &cx.gateway;
    let (id, task) = finished(
        gateway,
        "test_echo",
        json!({"message": message}),
        "succeeded",
    )
    .await?;
    ensure!(
        task["result"]["echoed"] == message,
        "task result: {}",
        brief(&task)
    );
    let key = format!("succeeded/{id}.json");
    let stored = object(cx.results, &key).await?;
    ensure!(stored["id"] == id, "stored id: {stored}");
    ensure!(
        stored["payload"]["echoed"] == message,
        "stored payload: {stored}"
    );
    ensure!(
        stored["route"]["prev"] == json!(["test-echo"]),
        "stored route: {stored}"
    );
    ensure!(
        stored["status"]["phase"] == "succeeded",
        "stored status: {stored}"
    );
    exactly(cx, cx.results, &[key]).await?;
    exactly(cx, cx.errors, &[]).await
}

async fn pipeline(cx: &Ctx<'_>) -> CaseResult {
    let gateway = &cx.gateway;
    let (id, _) = finished(gateway, "test_pipeline", json!({"value": 10}), "succeeded").await?;
    let stored = object(cx.results, &format!("succeeded/{id}.json")).await?;
    ensure!(stored["payload"]["value"] == 25, "stored payload: {stored}");
    ensure!(
        stored["route"]["prev"] == json!(["test-doubler", "test-incrementer"]),
        "stored route: {stored}"
    );
    Ok(())
}

async fn error(cx: &Ctx<'_>) -> CaseResult {
    let gateway = &cx.gateway;
    let (id, task) = finished(
        gateway,
        "test_error",
        json!({"should_fail": true}),
        "failed",
    )
    .await?;
    let message = "Intentional test failure";
    ensure!(
        task["error"].as_str().is_some_and(|e| e.contains(message)),
        "task error: {}",
        brief(&task)
    );
    let key = format!("failed/{id}.json");
    let stored = object(cx.errors, &key).await?;
    let payload = &stored["payload"];
    ensure!(
        payload["error"] == "processing_error",
        "stored payload: {stored}"
    );
    ensure!(
        payload["details"]["type"] == "ValueError",
        "stored details: {stored}"
    );
    ensure!(
        payload["details"]["message"] == message,
        "stored details: {stored}"
    );
    ensure!(
        payload["original_payload"] == json!({"should_fail": true}),
        "stored original payload: {stored}"
    );
    ensure!(
        stored["status"]["phase"] == "failed",
        "stored status: {stored}"
    );
    exactly(cx, cx.errors, &[key]).await?;
    exactly(cx, cx.results, &[]).await
}

/// `len` bytes of printable ASCII from a seed (xorshift), so a corrupted
/// or truncated byte anywhere shows.
fn pattern(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ALPHABET[(state % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

async fn large_payload(cx: &Ctx<'_>) -> CaseResult {
    let kb = cx.large_payload_kb;
    let data = pattern(kb as usize * 1024, 0x5eed);
    let gateway = &cx.gateway;
    let (id, _) = finished(
        gateway,
        "test_large_payload",
        json!({"size_kb": kb, "data": data}),
        "succeeded",
    )
    .await?;
    let stored = object(cx.results, &format!("succeeded/{id}.json")).await?;
    let got = stored["payload"]["data"].as_str().unwrap_or("");
    if got != data {
        let at = got.bytes().zip(data.bytes()).position(|(a, b)| a != b);
        return Err(format!(
            "stored data differs: {} bytes stored, {} sent, first difference at {at:?}",
            got.len(),
            data.len()
        ));
    }
    ensure!(
        stored["payload"]["bytes"] == data.len(),
        "stored size: {}",
        stored["payload"]["bytes"]
    );
    Ok(())
}

async fn concurrent_tasks(cx: &Ctx<'_>) -> CaseResult {
    let gateway = &cx.gateway;
    let messages: Vec<String> = (0..20).map(|i| unique(&format!("task{i}"))).collect();
    let ids = try_join_all(
        messages
            .iter()
            .map(|m| gateway.call("test_echo", json!({"message": m}))),
    )
    .await?;
    let tasks = try_join_all(ids.iter().map(|id| gateway.wait_final(id, FINAL_WITHIN))).await?;
    for task in &tasks {
        ensure!(status_of(task) == "succeeded", "task: {}", brief(task));
    }
    let keys: Vec<String> = ids
        .iter()
        .map(|id| format!("succeeded/{id}.json"))
        .collect();
    let stored = try_join_all(keys.iter().map(|k| object(cx.results, k))).await?;
    for ((id, message), stored) in ids.iter().zip(&messages).zip(&stored) {
        ensure!(stored["id"] == *id, "stored id: {stored}");
        ensure!(
            stored["payload"]["echoed"] == *message,
            "task {id} stored {stored}"
        );
    }
    exactly(cx, cx.results, &keys).await
}

async fn fan_out(cx: &Ctx<'_>) -> CaseResult {
    let message = unique("fan");
    let gateway = &cx.gateway;
    let (id, _) = finished(
        gateway,
        "test_echo",
        json!({"message": message, "repeat": 3}),
        "succeeded",
    )
    .await?;
    let keys = wait_for_keys(cx.results, 3, Duration::from_secs(30)).await?;
    ensure!(keys.len() == 3, "fan-out stored {keys:?}");
    let mut children = BTreeSet::new();
    for key in &keys {
        let stored = object(cx.results, key).await?;
        ensure!(stored["payload"]["echoed"] == message, "stored {stored}");
        if stored["id"] == id {
            ensure!(
                stored.get("parent_id").is_none(),
                "the first frame keeps its parent: {stored}"
            );
        } else {
            ensure!(
                stored["parent_id"] == id,
                "a child without its parent: {stored}"
            );
            children.insert(stored["id"].to_string());
        }
    }
    ensure!(
        children.len() == 2,
        "two distinct children expected, got {children:?}"
    );
    ensure!(keys.contains(&format!("succeeded/{id}.json")), "{keys:?}");
    Ok(())
}

async fn empty_answer(cx: &Ctx<'_>) -> CaseResult {
    let message = unique("silent");
    let gateway = &cx.gateway;
    let arguments = json!({"message": message, "repeat": 0});
    let (id, _) = finished(gateway, "test_echo", arguments.clone(), "succeeded").await?;
    let stored = object(cx.results, &format!("succeeded/{id}.json")).await?;
    // Nothing came back, so the envelope went on as it came.
    ensure!(stored["payload"] == arguments, "stored payload: {stored}");
    ensure!(
        stored["route"] == json!({"prev": [], "curr": "test-echo"}),
        "stored route: {stored}"
    );
    Ok(())
}

async fn deadline(cx: &Ctx<'_>) -> CaseResult {
    let gateway = &cx.gateway;
    // This tool's timeout is 0: the deadline has passed when the first
    // actor sees the task.
    let (id, task) = finished(
        gateway,
        "test_deadline",
        json!({"message": "too late"}),
        "failed",
    )
    .await?;
    ensure!(
        task["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline")),
        "task error: {}",
        brief(&task)
    );
    let key = format!("failed/{id}.json");
    let stored = object(cx.results, &key).await?;
    ensure!(
        stored["status"]["phase"] == "failed",
        "stored status: {stored}"
    );
    ensure!(
        stored["payload"] == json!({"message": "too late"}),
        "stored payload: {stored}"
    );
    exactly(cx, cx.errors, &[]).await
}

async fn gateway_api(cx: &Ctx<'_>) -> CaseResult {
    let gateway = &cx.gateway;
    let (status, body) = gateway.get("/health").await?;
    ensure!(
        status == 200 && body["status"] == "ok",
        "/health: {status} {body}"
    );
    let (status, _) = gateway
        .post(
            "/tools/call",
            &json!({"name": "no_such_tool", "arguments": {}}),
        )
        .await?;
    ensure!(status == 404, "unknown tool: {status}");
    let (status, _) = gateway.get("/mesh/no-such-task").await?;
    ensure!(status == 404, "unknown task: {status}");
    let report =
        json!({"id": "no-such-task", "status": "succeeded", "result": null, "actor": "x-sink"});
    let (status, _) = gateway.post("/mesh/no-such-task/final", &report).await?;
    ensure!(status == 404, "final report of an unknown task: {status}");
    // A task's status never goes back, whatever is reported later.
    let (id, _) = finished(
        gateway,
        "test_echo",
        json!({"message": "once"}),
        "succeeded",
    )
    .await?;
    let late = json!({"id": id, "status": "failed", "error": "late", "actor": "x-sump"});
    let (status, body) = gateway.post(&format!("/mesh/{id}/final"), &late).await?;
    ensure!(
        status == 200 && body["status"] == "succeeded",
        "late report: {status} {body}"
    );
    let (status, _) = gateway
        .post(
            &format!("/mesh/{id}/final"),
            &json!({"id": id, "status": "running"}),
        )
        .await?;
    ensure!(status == 400, "a report that is not final: {status}");
    let task = gateway.task(&id).await?;
    ensure!(
        status_of(&task) == "succeeded" && task["error"].is_null(),
        "task after late reports: {}",
        brief(&task)
    );
    Ok(())
}

/// Tasks submitted to see a disruption through: echoes and failing
/// tasks, each to end in storage exactly once.
#[derive(Default)]
pub struct InFlight {
    pub echoes: Vec<String>,
    pub echo_ids: Vec<String>,
    pub error_ids: Vec<String>,
}

impl InFlight {
    /// Submits `echoes` echo tasks (messages tagged `tag`) and `errors`
    /// failing ones, without waiting for them.
    pub async fn submit(
        gateway: &Gateway,
        tag: &str,
        echoes: usize,
        errors: usize,
    ) -> Result<InFlight, String> {
        InFlight::submit_slow(gateway, tag, echoes, errors, 0).await
    }

    /// The same, with echo handlers that take `sleep_ms` each.
    pub async fn submit_slow(
        gateway: &Gateway,
        tag: &str,
        echoes: usize,
        errors: usize,
        sleep_ms: u64,
    ) -> Result<InFlight, String> {
        let echoes: Vec<String> = (0..echoes).map(|i| unique(&format!("{tag}{i}"))).collect();
        let echo_ids = try_join_all(echoes.iter().map(|m| {
            let mut arguments = json!({"message": m});
            if sleep_ms > 0 {
                arguments["sleep_ms"] = json!(sleep_ms);
            }
            gateway.call("test_echo", arguments)
        }))
        .await?;
        let error_ids = try_join_all(
            (0..errors).map(|_| gateway.call("test_error", json!({"should_fail": true}))),
        )
        .await?;
        Ok(InFlight {
            echoes,
            echo_ids,
            error_ids,
        })
    }

    /// These tasks and `other`'s.
    pub fn and(mut self, other: InFlight) -> InFlight {
        self.echoes.extend(other.echoes);
        self.echo_ids.extend(other.echo_ids);
        self.error_ids.extend(other.error_ids);
        self
    }

    pub fn ids(&self) -> impl Iterator<Item = &String> {
        self.echo_ids.iter().chain(&self.error_ids)
    }

    /// Waits until every task is final (echoes `succeeded`, errors
    /// `failed`), then checks that the crew's storage holds exactly their
    /// objects: nothing lost, nothing stored twice under different names.
    pub async fn all_stored(&self, cx: &Ctx<'_>) -> CaseResult {
        let finals = join_all(self.ids().map(|id| cx.gateway.wait_final(id, FINAL_WITHIN))).await;
        for task in finals {
            let task = task?;
            let expected = if self.error_ids.iter().any(|id| task["id"] == *id) {
                "failed"
            } else {
                "succeeded"
            };
            ensure!(
                status_of(&task) == expected,
                "{expected} expected: {}",
                brief(&task)
            );
        }
        let echo_keys: Vec<String> = self
            .echo_ids
            .iter()
            .map(|id| format!("succeeded/{id}.json"))
            .collect();
        let error_keys: Vec<String> = self
            .error_ids
            .iter()
            .map(|id| format!("failed/{id}.json"))
            .collect();
        exactly(cx, cx.results, &echo_keys).await?;
        exactly(cx, cx.errors, &error_keys).await?;
        for ((key, id), message) in echo_keys.iter().zip(&self.echo_ids).zip(&self.echoes) {
            let stored = object(cx.results, key).await?;
            ensure!(
                stored["id"] == *id && stored["payload"]["echoed"] == *message,
                "stored {stored}"
            );
        }
        Ok(())
    }
}

/// Storage goes away while tasks are in flight and comes back: every task
/// still ends, each stored exactly once under its own name, and nothing
/// was reported final before it was stored.
async fn storage_outage(cx: &Ctx<'_>) -> CaseResult {
    let Some(outage) = cx.outage else {
        return Err("this run has no outage forwarder".into());
    };
    let gateway = cx.gateway;
    outage.cut();
    let restored = async {
        let refused_before = outage.refused();
        let tasks = InFlight::submit(gateway, "outage", 6, 2).await?;
        let all = tasks.ids().count();
        // Checkpoints are attempted (and refused) again and again, and no
        // task is reported final meanwhile.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for id in tasks.ids() {
                let task = gateway.task(id).await?;
                ensure!(
                    status_of(&task) == "running",
                    "final during the outage: {}",
                    brief(&task)
                );
            }
            if outage.refused() >= refused_before + 2 * all as u64 {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the crew did not try to reach storage during the outage ({} refused)",
                outage.refused() - refused_before
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        exactly(cx, cx.results, &[]).await?;
        exactly(cx, cx.errors, &[]).await?;
        outage.restore();
        tasks.all_stored(cx).await
    }
    .await;
    // Whatever happened, storage is back for the tests after this one.
    outage.restore();
    restored
}

/// The cleanup between tests lists past the emulator's page size.
async fn cleanup_pages(cx: &Ctx<'_>) -> CaseResult {
    let results = cx.results;
    storage::fill(results, "paging/", 1100).await?;
    let emptied = storage::empty(results).await?;
    ensure!(
        emptied.keys.len() == 1100,
        "listed {} of 1100",
        emptied.keys.len()
    );
    ensure!(
        emptied.pages >= 2,
        "1100 keys listed in {} page(s)",
        emptied.pages
    );
    exactly(cx, results, &[]).await
}

/// A checkpoint the x-sink proxy refuses for good (413, the body is over
/// its limit) ends the task as failed instead of being redelivered
/// forever: x-sump stores a small stand-in without the payload, and the
/// task's error names the refusal. Needs `run`, which sets the limit.
async fn checkpoint_refused(cx: &Ctx<'_>) -> CaseResult {
    let kb = sink_max_body_kb(cx.large_payload_kb) + 16;
    let data = pattern(kb as usize * 1024, 0x413);
    let (id, task) = finished(
        cx.gateway,
        "test_large_payload",
        json!({"size_kb": kb, "data": data}),
        "failed",
    )
    .await?;
    let error = task["error"].as_str().unwrap_or("");
    ensure!(
        error.contains("checkpoint not written") && error.contains("413"),
        "task error: {}",
        brief(&task)
    );
    let key = format!("failed/{id}.json");
    let stored = object(cx.errors, &key).await?;
    ensure!(
        stored["payload"]["details"]["type"] == "CheckpointError",
        "stored: {}",
        brief(&stored)
    );
    ensure!(
        stored["payload"]["original_payload"].is_null(),
        "the stand-in carries no payload: {}",
        brief(&stored)
    );
    exactly(cx, cx.errors, &[key]).await?;
    exactly(cx, cx.results, &[]).await
}

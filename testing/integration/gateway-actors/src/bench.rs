//! The pipeline benchmark (docs/performance.md): tasks per second end to
//! end for `test_echo` (gateway submit until the object is in the bucket),
//! the raw rate of the same transport client with no actors
//! (`asya-mesh transport-bench`), and what one task costs stage by stage
//! (runtime invocation, checkpoint write, gateway submit, one transport
//! round trip), so the difference can be placed. Bounded in count.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method};
use serde_json::{Value, json};

use crate::profile::{Crew, Profile};
use crate::stack::{Options, Stack, proxy_socket};
use crate::storage;

/// Actor hops of an echo task: gateway → test-echo → x-sink.
const ECHO_HOPS: f64 = 2.0;
/// Checkpoints written for the storage's ceiling.
const CHECKPOINT_BURST: usize = 400;

pub async fn run(
    profile: &Profile,
    options: &Options,
    tasks: usize,
    concurrency: usize,
    results: Option<&Path>,
) -> Result<(), String> {
    println!(
        "== pipeline benchmark {} ({tasks} tasks, {concurrency} in flight)",
        profile.name
    );
    let stack = Stack::start(profile, options).await?;
    let measured = measure(&stack, options, tasks, concurrency).await;
    let cleaned = stack.clean().await;
    let problems = stack.stop().await;
    let mut measured = measured?;
    cleaned?;
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    measured["profile"] = json!(match &options.crew_connector {
        Some(connector) => format!("{} (crew on {connector})", profile.name),
        None => profile.name.clone(),
    });
    print_summary(&measured);
    println!("CPU ms per task: {}", measured["cpu_ms_per_task"]);
    if let Some(path) = results {
        let text = serde_json::to_string_pretty(&measured).expect("serializable");
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(0.0)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

async fn measure(
    stack: &Stack,
    options: &Options,
    tasks: usize,
    concurrency: usize,
) -> Result<Value, String> {
    let crew_in_memory = options.crew_connector.is_some();
    let gateway = stack.gateway.clone().polling(Duration::from_millis(1));
    // Warm-up: connections, queue URLs, the proxies' clients.
    for i in 0..10 {
        let id = gateway
            .call("test_echo", json!({"message": format!("warm{i}")}))
            .await?;
        gateway.wait_final(&id, Duration::from_secs(60)).await?;
    }
    stack.clean().await?;

    // One task at a time: latency end to end, and of the submit alone.
    let (mut end_to_end, mut submit) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let began = Instant::now();
        let id = gateway
            .call("test_echo", json!({"message": format!("seq{i}")}))
            .await?;
        submit.push(ms(began));
        gateway.wait_final(&id, Duration::from_secs(60)).await?;
        end_to_end.push(ms(began));
    }
    stack.clean().await?;

    // Throughput: `tasks` echo tasks, `concurrency` submits in flight,
    // until every object is in the bucket.
    let parts = measured_processes(stack, options).await;
    let cpu_before = cpu_of(&parts);
    let started = Instant::now();
    let submits = futures_util::stream::iter(0..tasks)
        .map(|i| gateway.call("test_echo", json!({"message": format!("bench{i}")})))
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let ids: Vec<String> = submits.into_iter().collect::<Result<_, _>>()?;
    let submitted = started.elapsed();
    // Done when the gateway has every task's final report, which x-sink
    // sends only once the object is stored (one local HTTP call later).
    // Polling the bucket instead would load the emulator that the crew
    // is writing to.
    for id in &ids {
        let task = gateway.wait_final(id, Duration::from_secs(600)).await?;
        if task["status"] != "succeeded" {
            return Err(format!("task {id} ended {}", task["status"]));
        }
    }
    let pipeline_seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_per_task(&parts, &cpu_before, tasks, pipeline_seconds);
    if !crew_in_memory {
        let stored: BTreeSet<String> = stack.results.list().await?.keys.into_iter().collect();
        if let Some(missing) = ids
            .iter()
            .find(|id| !stored.contains(&format!("succeeded/{id}.json")))
        {
            return Err(format!("task {missing} is final but has no object"));
        }
    }
    stack.clean().await?;

    let stages = stage_costs(stack).await?;
    let transport = transport_rate(stack, options, tasks, concurrency).await?;
    let pipeline_rate = tasks as f64 / pipeline_seconds;
    let transport_rate = transport["messages_per_second"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "tasks": tasks,
        "concurrency": concurrency,
        "pipeline": {
            "seconds": pipeline_seconds,
            "submit_seconds": submitted.as_secs_f64(),
            "tasks_per_second": pipeline_rate,
            "end_to_end_ms_median": median_ms(end_to_end),
            "submit_ms_median": median_ms(submit),
        },
        "transport": transport,
        "stages_ms_median": stages,
        "cpu_ms_per_task": cpu,
        "ratio": pipeline_rate / transport_rate,
        "transport_round_trips_per_hop": transport_rate / pipeline_rate / ECHO_HOPS,
    }))
}

/// The processes whose CPU the throughput run is charged to: the stack's,
/// the emulators' (their pid files in the run directory), the RabbitMQ
/// broker when it can be asked, and this client.
async fn measured_processes(stack: &Stack, options: &Options) -> Vec<(String, u32)> {
    let mut parts: Vec<(String, u32)> = stack
        .pids()
        .await
        .into_iter()
        .map(|(part, pid)| (part.to_owned(), pid))
        .collect();
    let emulators = std::fs::read_dir(&options.run_dir)
        .into_iter()
        .flatten()
        .flatten();
    for dir in emulators.filter(|e| e.path().is_dir()) {
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "pid") {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                if let (Some(pid), Some(name)) = (pid, name) {
                    parts.push((name, pid));
                }
            }
        }
    }
    if stack.mesh_env.get("ASYA_TRANSPORT").map(String::as_str) == Some("rabbitmq") {
        let broker = std::process::Command::new("rabbitmqctl")
            .args(["-q", "eval", "list_to_integer(os:getpid())."])
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok());
        if let Some(pid) = broker {
            parts.push(("rabbitmq broker".into(), pid));
        }
    }
    parts.push(("benchmark client".into(), std::process::id()));
    parts
}

/// User and system CPU of a process so far, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks * 1e3 / per_second)
}

fn cpu_of(parts: &[(String, u32)]) -> Vec<Option<f64>> {
    parts.iter().map(|(_, pid)| cpu_ms(*pid)).collect()
}

/// CPU milliseconds per task by part, and what the two cores had left.
fn cpu_per_task(
    parts: &[(String, u32)],
    before: &[Option<f64>],
    tasks: usize,
    seconds: f64,
) -> Value {
    let mut by_part = serde_json::Map::new();
    let mut total = 0.0;
    for (((part, _), before), after) in parts.iter().zip(before).zip(cpu_of(parts)) {
        if let (Some(before), Some(after)) = (before, after) {
            let per_task = (after - before) / tasks as f64;
            total += per_task;
            let entry = by_part.entry(part.clone()).or_insert(json!(0.0));
            *entry = json!(entry.as_f64().unwrap_or(0.0) + per_task);
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    by_part.insert("all measured".into(), json!(total));
    by_part.insert(
        "machine (cores × wall)".into(),
        json!(cores * seconds * 1e3 / tasks as f64),
    );
    Value::Object(by_part)
}

/// Median cost of the pieces of one task, each measured alone.
async fn stage_costs(stack: &Stack) -> Result<Value, String> {
    let runtime = state_client::Client::new(
        stack.socket_dirs["test-echo"].join(asya_mesh::runtime::SOCKET_NAME),
    );
    let envelope = Bytes::from(
        json!({"id": "bench", "route": {"prev": [], "curr": "test-echo", "next": []},
               "payload": {"message": "bench"}, "status": {"phase": "pending"}})
        .to_string(),
    );
    let mut invoke = Vec::new();
    for _ in 0..200 {
        let began = Instant::now();
        let answer = runtime
            .raw(Method::POST, "/invoke", HeaderMap::new(), envelope.clone())
            .await
            .map_err(|e| format!("invoke: {e}"))?;
        if answer.status != 200 {
            return Err(format!("invoke answered {}", answer.status));
        }
        invoke.push(ms(began));
    }
    let proxy = state_client::Client::new(proxy_socket(&stack.socket_dirs["x-sink"], Crew::Sink));
    let document = json!({"id": "bench", "route": {"prev": ["test-echo"], "curr": ""},
                          "payload": {"echoed": "bench"}, "status": {"phase": "succeeded"}})
    .to_string();
    let mut checkpoint = Vec::new();
    for i in 0..50 {
        let began = Instant::now();
        proxy
            .put(
                &format!("bench/{i}.json"),
                document.clone(),
                state_client::Condition::None,
            )
            .await
            .map_err(|e| format!("checkpoint: {e}"))?;
        checkpoint.push(ms(began));
    }
    // The storage's own ceiling: checkpoints as many at once as the
    // x-sink sidecar runs.
    let began = Instant::now();
    let writes = futures_util::stream::iter(0..CHECKPOINT_BURST)
        .map(|i| {
            let (proxy, document) = (&proxy, document.clone());
            async move {
                let key = format!("bench/burst-{i}.json");
                proxy
                    .put(&key, document, state_client::Condition::None)
                    .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    if let Some(Err(e)) = writes.into_iter().find(Result::is_err) {
        return Err(format!("checkpoint burst: {e}"));
    }
    let checkpoints_per_second = CHECKPOINT_BURST as f64 / began.elapsed().as_secs_f64();
    storage::empty(&*stack.results).await?;
    let mut report = Vec::new();
    for _ in 0..50 {
        let began = Instant::now();
        // An unknown task: the gateway's HTTP cost without side effects.
        stack
            .gateway
            .post(
                "/mesh/bench/final",
                &json!({"id": "bench", "status": "succeeded", "actor": "x-sink"}),
            )
            .await?;
        report.push(ms(began));
    }
    Ok(json!({
        "runtime_invoke": median_ms(invoke),
        "checkpoint_put": median_ms(checkpoint),
        "checkpoints_per_second_16": checkpoints_per_second,
        "gateway_report": median_ms(report),
    }))
}

/// `asya-mesh transport-bench` with the mesh's environment.
async fn transport_rate(
    stack: &Stack,
    options: &Options,
    messages: usize,
    concurrency: usize,
) -> Result<Value, String> {
    let output = tokio::process::Command::new(&options.mesh_bin)
        .args([
            "transport-bench",
            "--messages",
            &messages.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&stack.mesh_env)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("transport-bench: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "transport-bench failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| format!("transport-bench output: {e}"))
}

fn print_summary(m: &Value) {
    let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "| {} | {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {:.2} |",
        m["profile"].as_str().unwrap_or(""),
        m["tasks"],
        number(&m["pipeline"]["tasks_per_second"]),
        number(&m["transport"]["messages_per_second"]),
        number(&m["ratio"]),
        number(&m["transport_round_trips_per_hop"]),
        number(&m["pipeline"]["end_to_end_ms_median"]),
        number(&m["transport"]["round_trip_ms_median"]),
        number(&m["stages_ms_median"]["runtime_invoke"]),
        number(&m["stages_ms_median"]["checkpoint_put"]),
        number(&m["stages_ms_median"]["checkpoints_per_second_16"]),
        number(&m["stages_ms_median"]["gateway_report"]),
    );
}

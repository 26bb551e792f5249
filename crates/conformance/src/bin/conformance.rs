//! `conformance run`: the suite against running proxies.
//! `conformance component`: start the real binary as a profile says, run
//! the suite and the connector's scenarios, stop it, report.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use conformance::component::{Proxy, backend_for, parse_env};
use conformance::{Profile, Report, Target, scenarios};
use serde_json::json;

#[derive(Parser)]
#[command(name = "conformance", about = "The state proxy protocol suite")]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Run the suite against a proxy that is already serving.
    Run {
        /// Socket of the proxy under test.
        #[arg(long)]
        socket: PathBuf,
        /// Sockets of other proxies on the same backend (three for the
        /// implicit compare-and-swap race).
        #[arg(long = "peer")]
        peers: Vec<PathBuf>,
        /// The connector the proxy runs, e.g. fs-buffered-cas.
        #[arg(long)]
        connector: String,
        /// The proxy's body limit in bytes, to test 413.
        #[arg(long)]
        body_limit: Option<u64>,
        /// A proxy on the same backend started with the environment of
        /// conformance::limited_env (QUERY_MAX_KEYS=40,
        /// QUERY_MAX_FETCH_BYTES=4096, QUERY_MAX_RESULT_ROWS=10), for the
        /// query limit cases.
        #[arg(long)]
        limited_socket: Option<PathBuf>,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Start the real binary as a profile says and test it.
    Component {
        /// Profile: KEY=VALUE lines of the proxy's environment.
        #[arg(long)]
        profile: PathBuf,
        /// The state-proxy binary.
        #[arg(long)]
        proxy: PathBuf,
        /// Files of KEY=VALUE lines (e.g. written by an emulator script)
        /// that the profile may refer to as ${KEY}.
        #[arg(long = "env-file")]
        env_files: Vec<PathBuf>,
        /// Directory for sockets, logs and data of this run.
        #[arg(long)]
        run_dir: PathBuf,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Write measurements (readiness, memory, streaming) here as JSON.
        #[arg(long)]
        results: Option<PathBuf>,
    },
    /// Print the proxy environment a profile resolves to (NAME=VALUE
    /// lines), e.g. to run `state-proxy selftest` exactly as the profile
    /// configures the proxy.
    Env {
        #[arg(long)]
        profile: PathBuf,
        #[arg(long = "env-file")]
        env_files: Vec<PathBuf>,
        #[arg(long)]
        run_dir: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Mode::Run {
            socket,
            peers,
            connector,
            body_limit,
            limited_socket,
            filter,
        } => {
            run(
                socket,
                peers,
                &connector,
                body_limit,
                limited_socket,
                filter,
            )
            .await
        }
        Mode::Component {
            profile,
            proxy,
            env_files,
            run_dir,
            filter,
            results,
        } => component(profile, proxy, env_files, run_dir, filter, results).await,
        Mode::Env {
            profile,
            env_files,
            run_dir,
        } => resolve_env(&profile, &env_files, &run_dir).map(|(_, env)| {
            for (name, value) in env {
                println!("{name}={value}");
            }
        }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("conformance: {message}");
            ExitCode::FAILURE
        }
    }
}

fn verdict(report: &Report) -> Result<(), String> {
    println!("{report}");
    if report.is_success() {
        Ok(())
    } else {
        Err(format!("{} case(s) failed", report.failures().len()))
    }
}

async fn run(
    socket: PathBuf,
    peers: Vec<PathBuf>,
    connector: &str,
    body_limit: Option<u64>,
    limited_socket: Option<PathBuf>,
    filter: Option<String>,
) -> Result<(), String> {
    let mut profile = Profile::for_connector(connector)?;
    profile.body_limit = body_limit;
    let mut target = Target::new(socket, profile).with_peers(peers);
    if let Some(socket) = limited_socket {
        target = target.with_limited(socket);
    }
    verdict(&conformance::run(&target, filter.as_deref()).await)
}

type Env = BTreeMap<String, String>;

/// The base environment (this process's, `RUN_DIR`, the env files) and
/// the proxy environment the profile resolves to over it.
fn resolve_env(
    profile_path: &PathBuf,
    env_files: &[PathBuf],
    run_dir: &PathBuf,
) -> Result<(Env, Env), String> {
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
    };
    std::fs::create_dir_all(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
    let mut base: Env = std::env::vars().collect();
    base.insert("RUN_DIR".into(), run_dir.display().to_string());
    for file in env_files {
        base.extend(
            parse_env(&read(file)?, &base).map_err(|e| format!("{}: {e}", file.display()))?,
        );
    }
    let env = parse_env(&read(profile_path)?, &base)
        .map_err(|e| format!("{}: {e}", profile_path.display()))?;
    Ok((base, env))
}

async fn component(
    profile_path: PathBuf,
    binary: PathBuf,
    env_files: Vec<PathBuf>,
    run_dir: PathBuf,
    filter: Option<String>,
    results: Option<PathBuf>,
) -> Result<(), String> {
    let (base, env) = resolve_env(&profile_path, &env_files, &run_dir)?;
    // Scenarios may also use what the emulator script wrote (how to stop
    // and restart it, for instance); the proxies get the profile only.
    let mut scenario_env = base.clone();
    scenario_env.extend(env.clone());
    let connector = env
        .get("ASYA_CONNECTOR")
        .ok_or("the profile must set ASYA_CONNECTOR")?;
    let mut profile = Profile::for_connector(connector)?;
    if let Some(limit) = env.get("STATE_MAX_BODY_BYTES") {
        profile.body_limit = Some(limit.parse().map_err(|_| {
            format!("STATE_MAX_BODY_BYTES in profiles is a plain number of bytes, got {limit}")
        })?);
    }
    // Without credentials (an emulator) a GCS proxy cannot sign URLs: it
    // does not list signed_url, and reading it answers 501 rather than
    // hand out a URL that does not work.
    if profile.store == "gcs" && env.contains_key("STORAGE_EMULATOR_HOST") {
        profile.not_implemented_attrs.push("signed_url");
    }
    let backend = backend_for(&profile, &env)?;

    println!("component run: {connector} ({})", profile_path.display());
    let mut proxies = Vec::new();
    for i in 0..4 {
        let socket = run_dir.join(format!("proxy-{i}.sock"));
        let log = run_dir.join(format!("proxy-{i}.log"));
        proxies.push(Proxy::start(&binary, &env, socket, &log).await?);
    }
    // One more on the same backend with small query limits.
    let mut limited_env = env.clone();
    limited_env.extend(
        conformance::limited_env()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value)),
    );
    let limited = Proxy::start(
        &binary,
        &limited_env,
        run_dir.join("proxy-limited.sock"),
        &run_dir.join("proxy-limited.log"),
    )
    .await?;
    let (idle_rss_kib, _) = proxies[0].memory_kib().unwrap_or_default();
    let ready_ms = proxies[0].ready_after.as_secs_f64() * 1e3;
    println!("proxy ready after {ready_ms:.1} ms, idle RSS {idle_rss_kib} KiB");

    let mut target = Target::new(&proxies[0].socket, profile.clone())
        .with_peers(proxies[1..].iter().map(|p| p.socket.clone()).collect())
        .with_limited(&limited.socket);
    if let Some(backend) = backend {
        target = target.with_backend(backend);
    }
    let report = conformance::run(&target, filter.as_deref()).await;
    let mut failures = Vec::new();
    if let Err(e) = verdict(&report) {
        failures.push(e);
    }

    let mut measures = json!({
        "connector": connector,
        "ready_ms": ready_ms,
        "idle_rss_kib": idle_rss_kib,
    });
    if filter.is_none() {
        let (scenario_measures, scenario_failures) =
            scenarios::run(&profile, &scenario_env, &proxies, &target.namespace).await;
        measures["scenarios"] = scenario_measures;
        failures.extend(scenario_failures);
    }

    if filter.is_none() && profile.store == "s3" {
        // One more, on a bucket that does not exist.
        let mut missing_env = env.clone();
        let bucket = format!(
            "{}-missing",
            env.get("STATE_BUCKET").map_or("state", String::as_str)
        );
        missing_env.insert("STATE_BUCKET".to_owned(), bucket);
        match Proxy::start(
            &binary,
            &missing_env,
            run_dir.join("proxy-missing-bucket.sock"),
            &run_dir.join("proxy-missing-bucket.log"),
        )
        .await
        {
            Ok(proxy) => {
                if let Err(e) = scenarios::s3::missing_bucket(&proxy).await {
                    failures.push(format!("s3 missing bucket: {e}"));
                }
                if let Err(e) = proxy.stop().await {
                    failures.push(format!("missing-bucket proxy: {e}"));
                }
            }
            Err(e) => failures.push(format!("missing-bucket proxy: {e}")),
        }
    }

    for (i, proxy) in proxies.into_iter().enumerate() {
        if let Err(e) = proxy.stop().await {
            failures.push(format!("proxy {i}: {e}"));
        }
    }
    if let Err(e) = limited.stop().await {
        failures.push(format!("limited-query proxy: {e}"));
    }
    if let Some(path) = results {
        let text = serde_json::to_string_pretty(&measures).expect("serializable");
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if failures.is_empty() {
        println!("component run passed: {connector}");
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

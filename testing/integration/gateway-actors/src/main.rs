//! `gateway-actors`: the integration level of the actor pipeline.
//!
//! - `run`: start a profile's processes (the emulators are already up:
//!   `run-profile.sh` starts them), run the tests, stop everything.
//! - `bench`: the same processes, then the pipeline benchmark beside the
//!   raw transport rate.

mod bench;
mod cases;
mod client;
mod outage;
mod process;
mod profile;
mod stack;
mod storage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use profile::Profile;
use stack::{Options, Stack};

#[derive(Parser)]
#[command(
    name = "gateway-actors",
    about = "Integration tests of the actor pipeline"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    /// The profile, `profiles/<transport>-<storage>.env`.
    #[arg(long)]
    profile: PathBuf,
    /// KEY=VALUE files the emulator scripts wrote; the profile refers to
    /// them as ${KEY}.
    #[arg(long = "env-file")]
    env_files: Vec<PathBuf>,
    /// Logs and results of this run.
    #[arg(long)]
    run_dir: PathBuf,
    /// The gateway's flows file.
    #[arg(long)]
    flows: PathBuf,
    /// The asya-mesh binary (default: next to this one).
    #[arg(long)]
    mesh: Option<PathBuf>,
    /// The state-proxy binary (default: next to this one).
    #[arg(long)]
    proxy: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tests against a profile.
    Run {
        #[command(flatten)]
        common: Common,
        /// Only tests whose name contains this.
        #[arg(long)]
        filter: Option<String>,
    },
    /// Measure tasks per second end to end and the raw transport rate.
    Bench {
        #[command(flatten)]
        common: Common,
        /// Tasks (and raw messages) to send.
        #[arg(long, default_value_t = 400)]
        tasks: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Where to write the measurements (JSON).
        #[arg(long)]
        results: Option<PathBuf>,
        /// Run both crew proxies on this connector instead (`memory`:
        /// the pipeline without the cost of storage).
        #[arg(long)]
        crew_connector: Option<String>,
    },
}

impl Common {
    fn options(
        &self,
        outage_forwarder: bool,
        crew_connector: Option<String>,
    ) -> Result<(Profile, Options), String> {
        std::fs::create_dir_all(&self.run_dir)
            .map_err(|e| format!("{}: {e}", self.run_dir.display()))?;
        let profile = Profile::read(&self.profile, &self.env_files, &self.run_dir)?;
        let here = std::env::current_exe()
            .map_err(|e| e.to_string())?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        let options = Options {
            mesh_bin: self.mesh.clone().unwrap_or_else(|| here.join("asya-mesh")),
            proxy_bin: self
                .proxy
                .clone()
                .unwrap_or_else(|| here.join("state-proxy")),
            flows: self.flows.clone(),
            run_dir: self.run_dir.clone(),
            outage_forwarder,
            sidecar_concurrency: 16,
            crew_connector,
        };
        Ok((profile, options))
    }
}

/// How long one test may take.
const CASE_WITHIN: Duration = Duration::from_secs(180);

async fn run(common: Common, filter: Option<String>) -> Result<(), String> {
    let started = Instant::now();
    let (profile, options) = common.options(true, None)?;
    println!("== integration profile {}", profile.name);
    let mut stack = Stack::start(&profile, &options).await?;
    println!(
        "   {} processes ready in {:.1} s",
        stack.socket_dirs.len() * 2 + 3,
        started.elapsed().as_secs_f64()
    );
    let cx = cases::Ctx {
        stack: &stack,
        large_payload_kb: profile.large_payload_kb()?,
    };
    let mut outcomes = Vec::new();
    for case in cases::all() {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        let began = Instant::now();
        let outcome = match cases::clean(&stack).await {
            Err(e) => Err(format!("cleaning the buckets before the test: {e}")),
            Ok(()) => tokio::time::timeout(CASE_WITHIN, (case.run)(&cx))
                .await
                .unwrap_or_else(|_| Err(format!("did not finish within {CASE_WITHIN:?}"))),
        };
        let took = began.elapsed().as_millis();
        match &outcome {
            Ok(()) => println!("  ok    {} ({took} ms)", case.name),
            Err(e) => println!("  FAIL  {} ({took} ms): {e}", case.name),
        }
        outcomes.push((case.name, outcome));
    }
    let cleaned = cases::clean(&stack).await;
    let exited = stack.exited();
    let problems = stack.stop().await;
    let mut closing = vec![("cleanup after the tests", cleaned)];
    closing.push((
        "every process kept running",
        if exited.is_empty() {
            Ok(())
        } else {
            Err(exited.join("\n"))
        },
    ));
    closing.push((
        "clean stop on SIGTERM",
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        },
    ));
    for (name, outcome) in closing {
        match &outcome {
            Ok(()) => println!("  ok    {name}"),
            Err(e) => println!("  FAIL  {name}: {e}"),
        }
        outcomes.push((name, outcome));
    }
    let failed = outcomes.iter().filter(|(_, o)| o.is_err()).count();
    let passed = outcomes.len() - failed;
    println!(
        "{}: {passed} passed, {failed} failed ({:.1} s; logs in {})",
        profile.name,
        started.elapsed().as_secs_f64(),
        options.run_dir.join("logs").display()
    );
    if failed == 0 && passed > 0 {
        Ok(())
    } else {
        Err(format!("integration profile {} failed", profile.name))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run { common, filter } => run(common, filter).await,
        Command::Bench {
            common,
            tasks,
            concurrency,
            results,
            crew_connector,
        } => match common.options(false, crew_connector) {
            Ok((profile, options)) => {
                bench::run(&profile, &options, tasks, concurrency, results.as_deref()).await
            }
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-actors: {e}");
            ExitCode::FAILURE
        }
    }
}

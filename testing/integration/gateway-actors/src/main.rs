//! `gateway-actors`: the integration level of the actor pipeline.
//!
//! - `run`: start a profile's processes (the emulators are already up:
//!   `run-profile.sh` starts them), run the tests, stop everything.
//! - `check`: the same tests against a mesh that is already running (the
//!   E2E level's pods), and tasks through disruptions it is put through
//!   (`--disruption`, see disruption.rs).
//! - `bench`: the same processes, then the pipeline benchmark beside the
//!   raw transport rate.

mod bench;
mod cases;
mod client;
mod disruption;
mod outage;
mod process;
mod profile;
mod resilience;
mod stack;
mod storage;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use cases::{CaseResult, Ctx};
use disruption::{Disrupt, Disruption};
use profile::{Crew, Profile};
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
    /// Run the tests against a gateway that is already serving (all but
    /// the storage outage, which needs the forwarder of `run`), then one
    /// test per `--disruption`.
    Check(CheckArgs),
    /// Measure tasks per second end to end and the raw transport rate.
    Bench {
        #[command(flatten)]
        common: Common,
        /// Tasks (and raw messages) to send.
        #[arg(long, default_value_t = 400, value_parser = at_least_one)]
        tasks: usize,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 32, value_parser = at_least_one)]
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

#[derive(Args)]
struct CheckArgs {
    /// The gateway, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    gateway: String,
    /// The profile: storage kind and the crew proxies' settings say where
    /// to read objects.
    #[arg(long)]
    profile: PathBuf,
    #[arg(long = "env-file")]
    env_files: Vec<PathBuf>,
    #[arg(long)]
    filter: Option<String>,
    /// A disruption to see tasks through, NAME=COMMAND (repeatable): tasks
    /// submitted before and during it must all be stored (see
    /// disruption.rs for what COMMAND is asked).
    #[arg(long = "disruption", value_parser = |s: &str| Disruption::parse(s, true))]
    disruptions: Vec<Disruption>,
    /// The same for a disruption after which storage has forgotten what
    /// it held (an in-memory emulator stopped and started again): only
    /// tasks submitted during it are checked.
    #[arg(long = "disruption-losing-storage", value_parser = |s: &str| Disruption::parse(s, false))]
    disruptions_losing_storage: Vec<Disruption>,
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

fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `Err` when `--filter` names nothing that could run: a typo must not
/// pass with zero tests.
fn check_filter<'a>(
    filter: Option<&str>,
    mut names: impl Iterator<Item = &'a str>,
) -> Result<(), String> {
    match filter {
        Some(f) if !names.any(|name| name.contains(f)) => {
            Err(format!("--filter {f:?} matches no test"))
        }
        _ => Ok(()),
    }
}

/// How long one test may take.
const CASE_WITHIN: Duration = Duration::from_secs(180);

type Outcomes = Vec<(String, CaseResult)>;

/// Runs the tests (those whose name contains `filter`), each on empty
/// buckets.
async fn run_cases(cx: &Ctx<'_>, filter: Option<&str>) -> Outcomes {
    let mut outcomes = Vec::new();
    for case in cases::all() {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        if case.needs_outage && cx.outage.is_none() {
            println!(
                "  --    {} not run: it needs `run` (the outage forwarder, the x-sink body limit)",
                case.name
            );
            continue;
        }
        let outcome = run_case(cx, case.name, (case.run)(cx)).await;
        outcomes.push((case.name.to_owned(), outcome));
    }
    outcomes
}

/// One test on empty buckets, within [`CASE_WITHIN`], reported.
async fn run_case(cx: &Ctx<'_>, name: &str, case: impl Future<Output = CaseResult>) -> CaseResult {
    let began = Instant::now();
    cx.gateway.next_test();
    let outcome = match cases::clean(cx.results, cx.errors).await {
        Err(e) => Err(format!("cleaning the buckets before the test: {e}")),
        Ok(()) => tokio::time::timeout(CASE_WITHIN, case)
            .await
            .unwrap_or_else(|_| Err(format!("did not finish within {CASE_WITHIN:?}"))),
    };
    report(name, &outcome, Some(began));
    outcome
}

/// One test per disruption (those whose name contains `filter`).
async fn run_disruptions(
    cx: &Ctx<'_>,
    disruptions: &[&dyn Disrupt],
    filter: Option<&str>,
) -> Outcomes {
    let mut outcomes = Vec::new();
    for &disruption in disruptions {
        let name = disruption::case_name(disruption);
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let outcome = run_case(cx, &name, disruption::run(cx, disruption)).await;
        outcomes.push((name, outcome));
    }
    outcomes
}

fn report(name: &str, outcome: &Result<(), String>, began: Option<Instant>) {
    let took = began
        .map(|b| format!(" ({} ms)", b.elapsed().as_millis()))
        .unwrap_or_default();
    match outcome {
        Ok(()) => println!("  ok    {name}{took}"),
        Err(e) => println!("  FAIL  {name}{took}: {e}"),
    }
}

/// Prints the closing line; `Err` unless something ran and all passed.
fn verdict(name: &str, outcomes: &Outcomes, started: Instant, logs: &str) -> Result<(), String> {
    let failed = outcomes.iter().filter(|(_, o)| o.is_err()).count();
    let passed = outcomes.len() - failed;
    println!(
        "{name}: {passed} passed, {failed} failed ({:.1} s{logs})",
        started.elapsed().as_secs_f64()
    );
    if failed == 0 && passed > 0 {
        Ok(())
    } else {
        Err(format!("integration profile {name} failed"))
    }
}

fn all_of(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Names of the disruptions `run` causes (resilience.rs), for `--filter`.
const RUN_DISRUPTIONS: &[&str] = &[
    "disruption:transport-outage",
    "disruption:transport-restart",
    "disruption:sidecar-crash",
    "disruption:proxy-restart",
];

async fn run(common: Common, filter: Option<String>) -> Result<(), String> {
    check_filter(
        filter.as_deref(),
        cases::all()
            .iter()
            .map(|c| c.name)
            .chain(RUN_DISRUPTIONS.iter().copied()),
    )?;
    let started = Instant::now();
    let (profile, options) = common.options(true, None)?;
    println!("== integration profile {}", profile.name);
    let mut stack = Stack::start(&profile, &options).await?;
    println!(
        "   {} processes ready in {:.1} s",
        stack.socket_dirs.len() * 2 + 3,
        started.elapsed().as_secs_f64()
    );
    let mut outcomes = {
        let cx = stack.context(profile.large_payload_kb()?);
        let mut outcomes = run_cases(&cx, filter.as_deref()).await;
        let own = resilience::all(&stack);
        let own: Vec<&dyn Disrupt> = own.iter().map(|d| &**d as &dyn Disrupt).collect();
        outcomes.extend(run_disruptions(&cx, &own, filter.as_deref()).await);
        outcomes
    };
    let closing = [
        ("cleanup after the tests", stack.clean().await),
        ("every process kept running", all_of(stack.exited())),
        ("clean stop on SIGTERM", all_of(stack.stop().await)),
    ];
    for (name, outcome) in closing {
        report(name, &outcome, None);
        outcomes.push((name.to_owned(), outcome));
    }
    let logs = format!("; logs in {}", options.run_dir.join("logs").display());
    verdict(&profile.name, &outcomes, started, &logs)
}

/// The tests against a mesh someone else runs (the E2E level's pods),
/// storage read as the profile says.
async fn check(args: CheckArgs) -> Result<(), String> {
    let disruption_names: Vec<String> = args
        .disruptions
        .iter()
        .chain(&args.disruptions_losing_storage)
        .map(|d| disruption::case_name(d))
        .collect();
    check_filter(
        args.filter.as_deref(),
        cases::all()
            .iter()
            .map(|c| c.name)
            .chain(disruption_names.iter().map(String::as_str)),
    )?;
    let started = Instant::now();
    let profile = Profile::read(&args.profile, &args.env_files, &std::env::temp_dir())?;
    println!("== checks of {} against {}", profile.name, args.gateway);
    let storage_kind = profile.storage()?;
    let results = storage::for_proxy(storage_kind, &profile.proxy_env(Crew::Sink))?;
    let errors = storage::for_proxy(storage_kind, &profile.proxy_env(Crew::Sump))?;
    let gateway = client::Gateway::new(&args.gateway);
    let cx = Ctx {
        gateway: &gateway,
        results: &*results,
        errors: &*errors,
        outage: None,
        large_payload_kb: profile.large_payload_kb()?,
    };
    let mut outcomes = run_cases(&cx, args.filter.as_deref()).await;
    let disruptions: Vec<&dyn Disrupt> = args
        .disruptions
        .iter()
        .chain(&args.disruptions_losing_storage)
        .map(|d| d as &dyn Disrupt)
        .collect();
    outcomes.extend(run_disruptions(&cx, &disruptions, args.filter.as_deref()).await);
    let cleaned = cases::clean(&*results, &*errors).await;
    report("cleanup after the tests", &cleaned, None);
    outcomes.push(("cleanup after the tests".to_owned(), cleaned));
    verdict(&profile.name, &outcomes, started, "")
}

/// Resolves when the runner gets SIGINT or SIGTERM.
async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // On a signal the command's future is dropped, and with it every
    // process it started: each is killed by its pid (`kill_on_drop`).
    let outcome = tokio::select! {
        outcome = command(cli.command) => outcome,
        signal = interrupted() => Err(format!("{signal}: every process of the run was killed")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway-actors: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn command(command: Command) -> Result<(), String> {
    match command {
        Command::Run { common, filter } => run(common, filter).await,
        Command::Check(args) => check(args).await,
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_must_match_a_test() {
        let names = || ["echo", "storage_outage", "disruption:x-sink"].into_iter();
        assert!(check_filter(None, names()).is_ok());
        assert!(check_filter(Some("outage"), names()).is_ok());
        assert!(check_filter(Some("disruption:"), names()).is_ok());
        let typo = check_filter(Some("outgae"), names()).unwrap_err();
        assert_eq!(typo, "--filter \"outgae\" matches no test");
    }

    #[test]
    fn counts_of_zero_are_refused() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err());
        assert!(at_least_one("many").is_err());
    }
}

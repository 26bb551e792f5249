//! `asya-mesh`: the mesh's processes, one subcommand each (runtime,
//! sidecar, gateway), the queue setup step and a health probe. Every
//! setting comes from the environment; see docs/integration.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use asya_mesh::{
    gateway, logging, probe, runtime, settings, setup, sidecar, transport, transport_bench,
};

#[derive(Parser)]
#[command(
    name = "asya-mesh",
    about = "The actor mesh of the integration and E2E levels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve POST /invoke on $ASYA_SOCKET_DIR/asya-runtime.sock with the
    /// handler ASYA_HANDLER names.
    Runtime,
    /// Consume ASYA_ACTOR_NAME's queue on ASYA_TRANSPORT and call the
    /// runtime on $ASYA_SOCKET_DIR.
    Sidecar,
    /// Serve the gateway API on ASYA_GATEWAY_ADDR with the tools of
    /// ASYA_FLOWS_FILE.
    Gateway,
    /// Create the queues of the given actors (or of the flows file's
    /// actors and the crew) on ASYA_TRANSPORT, then exit.
    Setup {
        /// Comma-separated actor names.
        #[arg(long, value_delimiter = ',')]
        actors: Vec<String>,
        /// Flows file whose actors to set up (default: ASYA_FLOWS_FILE).
        #[arg(long)]
        flows: Option<PathBuf>,
        /// Seconds to keep trying while the transport is unreachable.
        #[arg(long, default_value_t = 60)]
        patience: u64,
    },
    /// The raw rate of ASYA_TRANSPORT with no actors (JSON on stdout):
    /// messages published and consumed on one queue, and the round trip
    /// of one message at a time.
    TransportBench {
        #[arg(long, default_value_t = 400)]
        messages: usize,
        /// Bytes of each message.
        #[arg(long, default_value_t = 512)]
        size: usize,
        /// Sends in flight (and messages received at once).
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 20)]
        round_trips: usize,
    },
    /// Exit 0 when healthy: a socket answering GET /healthz, a URL
    /// answering 2xx, or a file that exists.
    Healthcheck {
        #[arg(long, group = "target")]
        socket: Option<PathBuf>,
        #[arg(long, group = "target")]
        url: Option<String>,
        #[arg(long, group = "target")]
        file: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        timeout: u64,
    },
}

/// Cancelled on the first SIGTERM or SIGINT.
fn stop_signal() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop signal received");
        cancel.cancel();
    });
    Ok(token)
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Runtime => {
            let config = runtime::Config::from_env().map_err(|e| e.to_string())?;
            let stop = stop_signal().map_err(|e| e.to_string())?;
            runtime::run(config, stop.cancelled_owned())
                .await
                .map_err(|e| e.to_string())
        }
        Command::Sidecar => {
            let config = sidecar::Config::from_env().map_err(|e| e.to_string())?;
            let transport = transport::from_env().await.map_err(|e| e.to_string())?;
            let stop = stop_signal().map_err(|e| e.to_string())?;
            sidecar::run(config, transport, stop).await
        }
        Command::Gateway => {
            let config = gateway::Config::from_env().map_err(|e| e.to_string())?;
            let transport = transport::from_env().await.map_err(|e| e.to_string())?;
            let stop = stop_signal().map_err(|e| e.to_string())?;
            gateway::run(config, transport, stop.cancelled_owned()).await
        }
        Command::Setup {
            mut actors,
            flows,
            patience,
        } => {
            let transport = transport::from_env().await.map_err(|e| e.to_string())?;
            if actors.is_empty() {
                let file = flows
                    .or_else(|| settings::var("ASYA_FLOWS_FILE").map(PathBuf::from))
                    .ok_or("give --actors, --flows or ASYA_FLOWS_FILE")?;
                actors = gateway::flows::Flows::read(&file)?.actors();
                for crew in [
                    settings::or("ASYA_ACTOR_SINK", "x-sink"),
                    settings::or("ASYA_ACTOR_SUMP", "x-sump"),
                ] {
                    if !actors.contains(&crew) {
                        actors.push(crew);
                    }
                }
            }
            setup::create_queues(&*transport, &actors, Duration::from_secs(patience)).await
        }
        Command::TransportBench {
            messages,
            size,
            concurrency,
            round_trips,
        } => {
            let transport = transport::from_env().await.map_err(|e| e.to_string())?;
            let plan = transport_bench::Plan {
                messages,
                size,
                concurrency,
                round_trips,
            };
            let result = transport_bench::run(transport, &plan).await?;
            println!("{result}");
            Ok(())
        }
        Command::Healthcheck {
            socket,
            url,
            file,
            timeout,
        } => {
            let target = match (&socket, &url, &file) {
                (Some(socket), _, _) => probe::Probe::Socket(socket),
                (_, Some(url), _) => probe::Probe::Url(url),
                (_, _, Some(file)) => probe::Probe::File(file),
                _ => return Err("give --socket, --url or --file".into()),
            };
            probe::check(target, Duration::from_secs(timeout)).await
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("asya-mesh: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("asya-mesh: {message}");
            ExitCode::FAILURE
        }
    }
}

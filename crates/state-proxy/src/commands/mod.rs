//! The `state-proxy` command line: `serve` (the default), `selftest`,
//! the client commands that poke a running proxy, and `bench`. Each
//! command reads its flags (`crate::config` for the proxy's own), builds
//! what it needs through the composition root (`crate::connector`) and
//! returns the message to print on failure.

pub mod bench;
pub mod client;
pub mod selftest;
pub mod serve;

use std::time::Instant;

use clap::{Parser, Subcommand};

use self::bench::BenchArgs;
use self::client::ClientCommand;
use crate::config::ServeArgs;
use crate::logging;

#[derive(Parser, Debug)]
#[command(
    name = "state-proxy",
    version,
    about = "State proxy sidecar for Asya actors: file-like state over a Unix socket",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Without a subcommand, the proxy serves with these flags.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the socket protocol (the default).
    Serve(ServeArgs),
    /// Check that the configured backend enforces the conditions the
    /// connector relies on; prints a table, exits non-zero on a failure.
    /// Takes the flags and environment of `serve`.
    Selftest(ServeArgs),
    #[command(flatten)]
    Client(ClientCommand),
    /// Load a running proxy and print throughput and latency as JSON.
    Bench(BenchArgs),
}

/// Runs the command line on `runtime`; `Err` is the message to print.
/// `started` is when the process began, for the start-up time in the log.
pub fn run(cli: Cli, runtime: &tokio::runtime::Runtime, started: Instant) -> Result<(), String> {
    match cli.command {
        None => serve_with(cli.serve, runtime, started),
        Some(Command::Serve(args)) => serve_with(args, runtime, started),
        Some(Command::Selftest(args)) => {
            logging::init(args.log_format);
            runtime.block_on(selftest::run(&args))
        }
        Some(Command::Client(command)) => runtime.block_on(client::run(command)),
        Some(Command::Bench(args)) => bench::run(&args).map(|report| {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
        }),
    }
}

fn serve_with(
    args: ServeArgs,
    runtime: &tokio::runtime::Runtime,
    started: Instant,
) -> Result<(), String> {
    logging::init(args.log_format);
    runtime.block_on(serve::run(args, started))
}

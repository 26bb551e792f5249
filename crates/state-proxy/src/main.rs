use std::process::ExitCode;

use clap::Parser;
use state_proxy::cli::{Cli, Command};
use state_proxy::{bench, cli, logging, selftest, serve};

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    let parsed = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("state-proxy: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match parsed.command {
        None => serve_with(parsed.serve, &runtime, started),
        Some(Command::Serve(args)) => serve_with(args, &runtime, started),
        Some(Command::Selftest(args)) => {
            logging::init(args.log_format);
            runtime.block_on(selftest::command(&args))
        }
        Some(Command::Bench(args)) => bench::run(&args).map(|report| {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
        }),
        Some(client_command) => runtime.block_on(cli::run_client(client_command)),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("state-proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

fn serve_with(
    args: state_proxy::config::ServeArgs,
    runtime: &tokio::runtime::Runtime,
    started: std::time::Instant,
) -> Result<(), String> {
    logging::init(args.log_format);
    runtime.block_on(serve::run(args, started))
}

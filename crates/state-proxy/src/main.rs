use std::process::ExitCode;

use clap::Parser;
use state_proxy::cli::{Cli, Command};
use state_proxy::{bench, cli, logging, selftest, serve};

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    return_large_buffers_to_the_system();
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

/// Streamed uploads hold a few multipart parts of several MiB at a time.
/// glibc raises its mmap threshold after the first such buffer is freed,
/// and from then on serves them from per-thread arenas that keep the
/// memory after it is freed: the peak grows to twice or three times what
/// is in use. A fixed threshold keeps every buffer of 1 MiB or more
/// mapped on its own and returned to the system when freed.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator setting (under glibc's
    // own lock); it is called first thing, before any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

//! The `state-proxy` binary: process-wide settings first (allocator,
//! TLS provider, async runtime), then the command line (`commands`).

use std::process::ExitCode;

use clap::Parser;
use state_proxy::commands::{self, Cli};

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    return_large_buffers_to_the_system();
    install_tls_provider();
    let cli = Cli::parse();
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
    match commands::run(cli, &runtime, started) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("state-proxy: {message}");
            ExitCode::FAILURE
        }
    }
}

/// TLS (rediss://, https to S3 and GCS) uses rustls with aws-lc-rs;
/// installed once as the process default, so every client in the process
/// uses the same provider.
fn install_tls_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
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

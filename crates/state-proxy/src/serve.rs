//! `state-proxy serve`: open the store, claim the socket, serve until a
//! signal, shut down gracefully.

use std::sync::Arc;

use crate::config::{ServeArgs, StoreKind};
use crate::http::{App, Server};
use crate::mode::Mode;
use crate::store::Store;
use crate::store::fs::{FsOptions, FsStore};
use crate::store::memory::MemoryStore;

/// Opens the store a connector names, or says why it cannot.
pub fn open_store(args: &ServeArgs) -> Result<Arc<dyn Store>, String> {
    match args.connector.store {
        StoreKind::Memory => Ok(Arc::new(MemoryStore::new(&args.prefix))),
        StoreKind::Fs => FsStore::open(FsOptions {
            dir: args.state_dir.clone(),
            prefix: args.prefix.clone(),
            sync: args.fs_sync,
        })
        .map(|store| Arc::new(store) as Arc<dyn Store>)
        .map_err(|e| e.to_string()),
        other => Err(format!(
            "connector {}: the {} store is not available in this build; available stores: memory, fs",
            args.connector,
            other.name()
        )),
    }
}

/// Builds the application a connector describes.
pub fn build_app(args: &ServeArgs) -> Result<Arc<App>, String> {
    let store = open_store(args)?;
    Ok(Arc::new(App::new(Mode::new(store, &args.mode_options()))))
}

/// Serves until SIGTERM or SIGINT; `Err` is a start-up failure.
/// `started` is when the process began, for the start-up time in the log.
pub async fn run(args: ServeArgs, started: std::time::Instant) -> Result<(), String> {
    let app = build_app(&args)?;
    let server = Server::bind(&args.socket, args.socket_mode, app, args.shutdown_grace)?;
    tracing::info!(
        socket = %server.path().display(),
        connector = %args.connector,
        prefix = %args.prefix,
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "state proxy ready"
    );
    server.serve(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals; stop the proxy with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    tracing::info!(signal = name, "stopping");
}

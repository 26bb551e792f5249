//! `state-proxy serve`: open the store, claim the socket, serve until a
//! signal, shut down gracefully.

use std::sync::Arc;

use crate::config::{ServeArgs, StoreKind, required};
use crate::http::metrics_listener::MetricsListener;
use crate::http::{App, Server};
use crate::mode::Mode;
use crate::store::Store;
use crate::store::fs::{FsOptions, FsStore};
use crate::store::gcs::{GcsOptions, GcsStore};
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::s3::{S3Options, S3Store};

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
        StoreKind::Redis => {
            let url = required(
                args.backend.redis_url.as_deref(),
                "REDIS_URL",
                "--redis-url",
                "redis",
            )?;
            RedisStore::open(RedisOptions {
                url: url.to_owned(),
                prefix: args.prefix.clone(),
                timeout: args.backend.backend_timeout,
            })
            .map(|store| Arc::new(store) as Arc<dyn Store>)
        }
        // Configuration only: no request and no credential lookup until
        // the first call that needs the backend.
        StoreKind::Gcs => GcsOptions::from_args(&args.backend, &args.prefix)
            .and_then(|options| GcsStore::new(options).map_err(|e| e.to_string()))
            .map(|store| Arc::new(store) as Arc<dyn Store>),
        StoreKind::S3 => S3Options::from_args(&args.backend, &args.prefix)
            .and_then(S3Store::new)
            .map(|store| Arc::new(store) as Arc<dyn Store>),
    }
}

/// Builds the application, first running the self-test when asked to:
/// a backend that does not enforce what the connector relies on would
/// lose data silently, so the proxy refuses to start on it.
async fn checked_app(args: &ServeArgs) -> Result<Arc<App>, String> {
    let store = open_store(args)?;
    let mut app = App::new(Mode::new(Arc::clone(&store), &args.mode_options()))
        .with_query_limits(args.query.limits());
    if args.selftest {
        let report = crate::selftest::run(store.as_ref(), &args.connector.to_string()).await;
        for check in &report.checks {
            tracing::info!(
                check = check.name,
                outcome = %check.outcome,
                detail = %check.detail,
                "selftest"
            );
        }
        if !report.passed {
            return Err(format!("refusing to start: {report}"));
        }
        app = app.with_selftest(report);
    }
    Ok(Arc::new(app))
}

/// Serves until SIGTERM or SIGINT; `Err` is a start-up failure.
///
/// TLS (rediss://, https) uses rustls with aws-lc-rs; installing it as the
/// process default keeps every client on the same provider.
/// `started` is when the process began, for the start-up time in the log.
pub async fn run(args: ServeArgs, started: std::time::Instant) -> Result<(), String> {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let app = checked_app(&args).await?;
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(MetricsListener::bind(addr).await?),
        None => None,
    };
    let server = Server::bind(
        &args.socket,
        args.socket_mode,
        Arc::clone(&app),
        args.shutdown_grace,
    )?;
    // The metrics listener lives as long as the socket server, grace
    // period included, and stops with it.
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = metrics_listener.map(|listener| {
        if let Some(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /metrics over TCP");
        }
        tokio::spawn(listener.serve(Arc::clone(app.metrics()), async {
            let _ = metrics_stopped.await;
        }))
    });
    tracing::info!(
        socket = %server.path().display(),
        connector = %args.connector,
        prefix = %args.prefix,
        startup_ms = started.elapsed().as_secs_f64() * 1e3,
        "state proxy ready"
    );
    server.serve(shutdown_signal()).await;
    drop(stop_metrics);
    if let Some(task) = metrics_task {
        let _ = task.await;
    }
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

//! `state-proxy serve`: build the proxy (`crate::connector`), claim the
//! socket, serve until a signal, shut down gracefully.

use std::sync::Arc;

use crate::config::ServeArgs;
use crate::connector;
use crate::http::Server;
use crate::http::metrics_listener::MetricsListener;

/// Serves until SIGTERM or SIGINT; `Err` is a start-up failure.
/// `started` is when the process began, for the start-up time in the log.
pub async fn run(args: ServeArgs, started: std::time::Instant) -> Result<(), String> {
    let settings = args.connector_settings()?;
    let app = connector::build(&settings).await?;
    let metrics_listener = match args.metrics_addr {
        Some(addr) => Some(MetricsListener::bind(addr).await?),
        None => None,
    };
    let server = Server::bind(&args.socket, &args.server_options(), Arc::clone(&app))?;
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
        connector = %settings.name,
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

//! The actor runtime: serves `POST /invoke` and `GET /healthz` on
//! `$ASYA_SOCKET_DIR/asya-runtime.sock` with a built-in handler, and
//! writes `$ASYA_SOCKET_DIR/runtime-ready` once it serves and every state
//! proxy of its mounts answers `/healthz`.

pub mod checkpoint;
pub mod handlers;
pub mod invoke;
pub mod mounts;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::settings::{self, SettingError};
use crate::web::{self as web, Handler as HttpHandler, Listener};
use handlers::Handler;
use invoke::Invoker;
use mounts::Mounts;

/// Name of the runtime's socket in the socket directory.
pub const SOCKET_NAME: &str = "asya-runtime.sock";
/// Name of the readiness file in the socket directory.
pub const READY_FILE: &str = "runtime-ready";
/// Default of `ASYA_SOCKET_DIR`.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/asya";
/// Default of `ASYA_STATE_SOCKET_DIR`.
pub const DEFAULT_STATE_SOCKET_DIR: &str = "/var/run/asya/state";
/// Largest envelope `/invoke` takes.
const MAX_ENVELOPE_BYTES: usize = 256 * 1024 * 1024;

pub struct Config {
    pub socket_dir: PathBuf,
    pub handler_name: String,
    pub handler: Handler,
    pub mounts: Mounts,
    pub persistence_mount: Option<PathBuf>,
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn from_env() -> settings::Result<Config> {
        let handler_name = settings::required("ASYA_HANDLER")?;
        let handler = Handler::by_name(&handler_name).ok_or_else(|| {
            SettingError(format!(
                "ASYA_HANDLER={handler_name:?} is not a built-in handler ({})",
                handlers::NAMES.join(", ")
            ))
        })?;
        let state_dir = settings::path_or("ASYA_STATE_SOCKET_DIR", DEFAULT_STATE_SOCKET_DIR);
        let mounts = Mounts::parse(&settings::or("ASYA_STATE_PROXY_MOUNTS", ""), &state_dir)
            .map_err(SettingError)?;
        let persistence_mount = settings::var("ASYA_PERSISTENCE_MOUNT").map(PathBuf::from);
        if matches!(handler, Handler::Checkpoint) {
            let mount = persistence_mount.as_ref().ok_or_else(|| {
                SettingError(format!(
                    "ASYA_PERSISTENCE_MOUNT must be set for the {handler_name} handler"
                ))
            })?;
            if !mounts.iter().any(|m| mount.starts_with(&m.path)) {
                return Err(SettingError(format!(
                    "ASYA_PERSISTENCE_MOUNT={} is not under any mount of ASYA_STATE_PROXY_MOUNTS",
                    mount.display()
                )));
            }
        }
        Ok(Config {
            socket_dir: settings::path_or("ASYA_SOCKET_DIR", DEFAULT_SOCKET_DIR),
            handler_name,
            handler,
            mounts,
            persistence_mount,
            shutdown_grace: settings::duration("ASYA_SHUTDOWN_GRACE", Duration::from_secs(10))?,
        })
    }
}

/// Serves until `shutdown` completes; removes the socket and the
/// readiness file on the way out.
pub async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let socket = config.socket_dir.join(SOCKET_NAME);
    let ready_file = config.socket_dir.join(READY_FILE);
    // A readiness file left by an earlier process must not be believed.
    let _ = std::fs::remove_file(&ready_file);
    let listener = Listener::unix(&socket)?;
    let ready = Arc::new(AtomicBool::new(false));
    let invoker = Arc::new(Invoker {
        handler: config.handler,
        mounts: config.mounts,
        persistence_mount: config.persistence_mount,
    });
    tracing::info!(handler = %config.handler_name, socket = %socket.display(), "runtime serving");

    let gate = {
        let (invoker, ready, ready_file) =
            (Arc::clone(&invoker), Arc::clone(&ready), ready_file.clone());
        async move {
            invoker.mounts.wait_ready().await;
            ready.store(true, Ordering::Release);
            std::fs::write(&ready_file, std::process::id().to_string())?;
            tracing::info!(file = %ready_file.display(), "runtime ready");
            Ok::<_, std::io::Error>(())
        }
    };
    let handler: HttpHandler = Arc::new(move |request| {
        let (invoker, ready) = (Arc::clone(&invoker), Arc::clone(&ready));
        Box::pin(async move {
            match (request.method(), request.uri().path()) {
                (&Method::GET, "/healthz") if ready.load(Ordering::Acquire) => {
                    web::json(StatusCode::OK, &json!({"status": "ready"}))
                }
                (&Method::GET, "/healthz") => web::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &json!({"status": "starting"}),
                ),
                (&Method::POST, "/invoke") => {
                    match web::read_body(request, MAX_ENVELOPE_BYTES).await {
                        Ok(body) => invoker.invoke(&body).await,
                        Err(answer) => answer,
                    }
                }
                (_, "/healthz" | "/invoke") => web::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    "GET /healthz, POST /invoke",
                ),
                _ => web::error(StatusCode::NOT_FOUND, "not_found", "no such route"),
            }
        })
    });
    let server = web::serve(listener, handler, shutdown, config.shutdown_grace);
    tokio::pin!(server);
    // Readiness comes while serving; the server stops on `shutdown` only.
    tokio::select! {
        () = &mut server => {}
        gated = gate => {
            gated?;
            server.await;
        }
    }
    let _ = std::fs::remove_file(&ready_file);
    tracing::info!("runtime stopped");
    Ok(())
}

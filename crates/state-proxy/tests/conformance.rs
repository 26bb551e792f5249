//! The conformance suite against in-process servers on real sockets, for
//! the embedded stores in every mode. Each test starts four servers over
//! one backend (the peers the compare-and-swap cases need): for `fs`, four
//! store instances on one directory, as four processes would be. A fifth
//! server on the same backend has the small query, memory and connection
//! limits the limit cases need.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use conformance::backend::FsBackend;
use conformance::{Profile, Target};
use state_proxy::connector::{self, AppSettings};
use state_proxy::http::connections::ConnectionLimits;
use state_proxy::http::pace::BodyPace;
use state_proxy::http::{Server, ServerOptions};
use state_proxy::mode::{Consistency, ModeOptions};
use state_proxy::query::QueryLimits;
use state_proxy::store::Store;
use state_proxy::store::fs::{FsOptions, FsStore};
use state_proxy::store::memory::MemoryStore;
use tokio::sync::oneshot;

const BODY_LIMIT: u64 = 4 << 20;
const SERVERS: usize = 4;

/// The options of the limited server, as `conformance::limited_env` sets
/// them for the binary.
fn limited_server() -> ServerOptions {
    ServerOptions {
        connections: ConnectionLimits {
            header_timeout: conformance::LIMITED_HEADER_TIMEOUT,
            idle_timeout: conformance::LIMITED_IDLE_TIMEOUT,
            write_timeout: conformance::LIMITED_WRITE_TIMEOUT,
            max_connections: conformance::LIMITED_MAX_CONNECTIONS,
        },
        body_pace: BodyPace {
            timeout: conformance::LIMITED_BODY_TIMEOUT,
            min_rate: conformance::LIMITED_MIN_BODY_RATE,
        },
        ..ServerOptions::new(0o600, Duration::from_secs(5))
    }
}

/// Servers running until dropped.
struct Servers {
    sockets: Vec<PathBuf>,
    limited: PathBuf,
    stops: Vec<oneshot::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Servers {
    async fn start(
        dir: &Path,
        consistency: Consistency,
        mut store: impl FnMut() -> Arc<dyn Store>,
    ) -> Servers {
        let options = ModeOptions {
            consistency,
            max_body_bytes: BODY_LIMIT,
            remembered_versions: NonZeroUsize::new(10_000).unwrap(),
        };
        let mut servers = Servers {
            sockets: Vec::new(),
            limited: dir.join("proxy-limited.sock"),
            stops: Vec::new(),
            tasks: Vec::new(),
        };
        let limited = QueryLimits {
            max_keys: conformance::LIMITED_MAX_KEYS,
            max_fetch_bytes: conformance::LIMITED_MAX_FETCH_BYTES,
            max_result_rows: conformance::LIMITED_MAX_RESULT_ROWS,
            ..QueryLimits::default()
        };
        for i in 0..=SERVERS {
            let plain = AppSettings::new(options.clone());
            let (socket, settings, server_options) = if i < SERVERS {
                let socket = dir.join(format!("proxy-{i}.sock"));
                (
                    socket,
                    plain,
                    ServerOptions::new(0o600, Duration::from_secs(5)),
                )
            } else {
                let settings = AppSettings {
                    query_limits: limited.clone(),
                    max_buffered_bytes: conformance::LIMITED_MAX_BUFFERED_BYTES,
                    buffer_wait: conformance::LIMITED_BUFFER_WAIT,
                    ..plain
                };
                (servers.limited.clone(), settings, limited_server())
            };
            let app = connector::assemble(store(), &settings, None);
            let server = Server::bind(&socket, &server_options, app).unwrap();
            let (stop, stopped) = oneshot::channel();
            servers.tasks.push(tokio::spawn(server.serve(async {
                let _ = stopped.await;
            })));
            if i < SERVERS {
                servers.sockets.push(socket);
            }
            servers.stops.push(stop);
        }
        servers
    }

    async fn stop(self) {
        for stop in self.stops {
            let _ = stop.send(());
        }
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

async fn check(target: Target, servers: Servers) {
    let report = conformance::run(&target, None).await;
    servers.stop().await;
    println!("{report}");
    assert!(report.is_success(), "conformance failures:\n{report}");
}

fn target(connector: &str, servers: &Servers) -> Target {
    let profile = Profile::for_connector(connector)
        .unwrap()
        .with_body_limit(BODY_LIMIT);
    Target::new(&servers.sockets[0], profile)
        .with_peers(servers.sockets[1..].to_vec())
        .with_limited(&servers.limited)
}

async fn memory(connector: &str, consistency: Consistency) {
    let dir = tempfile::tempdir().unwrap();
    let shared: Arc<dyn Store> = Arc::new(MemoryStore::new("tenant"));
    let servers = Servers::start(dir.path(), consistency, || Arc::clone(&shared)).await;
    let target = target(connector, &servers);
    check(target, servers).await;
}

async fn fs(connector: &str, consistency: Consistency) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let options = FsOptions {
        dir: data.clone(),
        prefix: "tenant/a".into(),
        sync: false,
    };
    let servers = Servers::start(dir.path(), consistency, || {
        Arc::new(FsStore::open(options.clone()).unwrap())
    })
    .await;
    let backend = FsBackend {
        dir: data,
        prefix: "tenant/a".into(),
    };
    let target = target(connector, &servers).with_backend(Arc::new(backend));
    check(target, servers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_buffered_lww() {
    memory("memory-buffered-lww", Consistency::BufferedLww).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_buffered_cas() {
    memory("memory-buffered-cas", Consistency::BufferedCas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_passthrough() {
    memory("memory-passthrough", Consistency::Passthrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_buffered_lww() {
    fs("fs-buffered-lww", Consistency::BufferedLww).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_buffered_cas() {
    fs("fs-buffered-cas", Consistency::BufferedCas).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs_passthrough() {
    fs("fs-passthrough", Consistency::Passthrough).await;
}

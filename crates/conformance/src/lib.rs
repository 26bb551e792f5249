//! The state proxy protocol suite (docs/protocol.md), runnable against any
//! socket: in-process servers in `cargo test`, the real binary on a real
//! emulator in component tests.
//!
//! Every case works under its own key namespace, so cases never see each
//! other's keys and a run never sees an earlier one's. What a connector is
//! expected to do comes from [`Profile`], written from the protocol and not
//! from what the proxy says of itself.

pub mod backend;
mod cases;
pub mod component;
pub mod profile;
pub mod raw;
mod report;
pub mod scenarios;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use backend::Backend;
pub use profile::{Consistency, Profile};
pub use report::{Report, Verdict};
use state_client::Client;

/// Where and what to test.
pub struct Target {
    /// The proxy under test.
    pub socket: PathBuf,
    /// Other proxy processes (or servers) on the same backend, for the
    /// cases about writers in other processes; the implicit
    /// compare-and-swap race wants three.
    pub peers: Vec<PathBuf>,
    pub profile: Profile,
    /// Direct access to the backend, to check where objects really are.
    pub backend: Option<Arc<dyn Backend>>,
    /// Root of every key the run creates.
    pub namespace: String,
    /// Another proxy on the same backend, started with the environment of
    /// [`limited_env`], for the cases that make query, memory and
    /// connection limits bite.
    pub limited: Option<PathBuf>,
}

/// `QUERY_MAX_KEYS` of the limited proxy.
pub const LIMITED_MAX_KEYS: usize = 40;
/// `QUERY_MAX_FETCH_BYTES` of the limited proxy.
pub const LIMITED_MAX_FETCH_BYTES: u64 = 4096;
/// `QUERY_MAX_RESULT_ROWS` of the limited proxy.
pub const LIMITED_MAX_RESULT_ROWS: usize = 10;

/// `STATE_MAX_BUFFERED_BYTES` of the limited proxy.
pub const LIMITED_MAX_BUFFERED_BYTES: u64 = 1 << 20;
/// `STATE_BUFFER_WAIT_SECS` of the limited proxy.
pub const LIMITED_BUFFER_WAIT: Duration = Duration::from_millis(200);
/// `STATE_HEADER_TIMEOUT_SECS` of the limited proxy.
pub const LIMITED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// `STATE_IDLE_TIMEOUT_SECS` of the limited proxy.
pub const LIMITED_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// `STATE_BODY_TIMEOUT_SECS` of the limited proxy.
pub const LIMITED_BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// `STATE_MIN_BODY_RATE` of the limited proxy.
pub const LIMITED_MIN_BODY_RATE: u64 = 1024;
/// `STATE_WRITE_TIMEOUT_SECS` of the limited proxy.
pub const LIMITED_WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// `STATE_MAX_CONNECTIONS` of the limited proxy.
pub const LIMITED_MAX_CONNECTIONS: usize = 16;

/// The environment (on top of the profile's) of the limited proxy:
/// limits small enough for the suite to reach with a few dozen objects,
/// a few connections and a second or two.
pub fn limited_env() -> Vec<(&'static str, String)> {
    let secs = |d: Duration| d.as_secs_f64().to_string();
    vec![
        ("QUERY_MAX_KEYS", LIMITED_MAX_KEYS.to_string()),
        ("QUERY_MAX_FETCH_BYTES", LIMITED_MAX_FETCH_BYTES.to_string()),
        ("QUERY_MAX_RESULT_ROWS", LIMITED_MAX_RESULT_ROWS.to_string()),
        (
            "STATE_MAX_BUFFERED_BYTES",
            LIMITED_MAX_BUFFERED_BYTES.to_string(),
        ),
        ("STATE_BUFFER_WAIT_SECS", secs(LIMITED_BUFFER_WAIT)),
        ("STATE_HEADER_TIMEOUT_SECS", secs(LIMITED_HEADER_TIMEOUT)),
        ("STATE_IDLE_TIMEOUT_SECS", secs(LIMITED_IDLE_TIMEOUT)),
        ("STATE_BODY_TIMEOUT_SECS", secs(LIMITED_BODY_TIMEOUT)),
        ("STATE_MIN_BODY_RATE", LIMITED_MIN_BODY_RATE.to_string()),
        ("STATE_WRITE_TIMEOUT_SECS", secs(LIMITED_WRITE_TIMEOUT)),
        ("STATE_MAX_CONNECTIONS", LIMITED_MAX_CONNECTIONS.to_string()),
    ]
}

impl Target {
    pub fn new(socket: impl Into<PathBuf>, profile: Profile) -> Target {
        Target {
            socket: socket.into(),
            peers: Vec::new(),
            profile,
            backend: None,
            namespace: unique_namespace(),
            limited: None,
        }
    }

    pub fn with_limited(mut self, socket: impl Into<PathBuf>) -> Target {
        self.limited = Some(socket.into());
        self
    }

    pub fn with_peers(mut self, peers: Vec<PathBuf>) -> Target {
        self.peers = peers;
        self
    }

    pub fn with_backend(mut self, backend: Arc<dyn Backend>) -> Target {
        self.backend = Some(backend);
        self
    }
}

/// `conformance-<time>-<pid>`: distinct for every run.
pub fn unique_namespace() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("conformance-{nanos:x}-{}", std::process::id())
}

/// What one case sees.
pub struct Ctx<'t> {
    pub target: &'t Target,
    /// A keep-alive client of the proxy under test.
    pub client: Client,
    /// Keep-alive clients of the peers.
    pub peers: Vec<Client>,
    namespace: String,
}

impl Ctx<'_> {
    /// A key inside this case's namespace.
    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The case's namespace, with a trailing `/`, for listings.
    pub fn dir(&self) -> String {
        format!("{}/", self.namespace)
    }

    pub fn profile(&self) -> &Profile {
        &self.target.profile
    }
}

/// How long one case may take before it counts as hung.
const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs every case that applies to the profile (those whose name contains
/// `filter`, when given), then deletes what the run created.
pub async fn run(target: &Target, filter: Option<&str>) -> Report {
    let mut report = Report::default();
    for case in cases::all() {
        if filter.is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        if !(case.applies)(target) {
            report.push(case.name, Verdict::NotApplicable, Duration::ZERO);
            continue;
        }
        if target.peers.len() < case.peers {
            let message = format!(
                "needs {} peer proxies on the same backend, got {}",
                case.peers,
                target.peers.len()
            );
            report.push(case.name, Verdict::Failed(message), Duration::ZERO);
            continue;
        }
        let cx = Ctx {
            target,
            client: Client::new(&target.socket),
            peers: target.peers.iter().map(Client::new).collect(),
            namespace: format!("{}/{}", target.namespace, case.name),
        };
        let started = std::time::Instant::now();
        let verdict = match tokio::time::timeout(CASE_TIMEOUT, (case.run)(&cx)).await {
            Ok(Ok(())) => Verdict::Passed,
            Ok(Err(message)) => Verdict::Failed(message),
            Err(_) => Verdict::Failed(format!("did not finish within {CASE_TIMEOUT:?}")),
        };
        report.push(case.name, verdict, started.elapsed());
    }
    if let Err(message) = clean_up(target).await {
        report.push("cleanup", Verdict::Failed(message), Duration::ZERO);
    }
    report
}

/// Deletes every key under the run's namespace, a bounded number at a
/// time (the query cases leave a few hundred).
async fn clean_up(target: &Target) -> Result<(), String> {
    use futures_util::{StreamExt, TryStreamExt};
    let client = Client::new(&target.socket);
    let listing = client
        .list(&format!("{}/", target.namespace), Some(""))
        .await
        .map_err(|e| format!("listing for cleanup: {e}"))?;
    futures_util::stream::iter(listing.keys)
        .map(|key| {
            let client = &client;
            async move {
                match client.delete(&key, state_client::Condition::None).await {
                    Ok(()) => Ok(()),
                    Err(e) if e.is_not_found() => Ok(()),
                    Err(e) => Err(format!("deleting {key}: {e}")),
                }
            }
        })
        .buffer_unordered(16)
        .try_collect()
        .await
}

//! The composition root: the one place where a proxy is put together.
//!
//! From checked settings (`crate::config` builds them from flags and
//! environment; tests write them directly) it opens the store, runs the
//! self-test when asked, wraps the store (metrics and the backend clock),
//! puts the consistency mode over it and builds the [`App`] the socket
//! server serves. `serve` and `selftest` both start here, and so do the
//! in-process tests, so what they run is what production runs.
//!
//! Per-process resources that every request shares (the metrics
//! registry, the memory budget of buffered bodies) are created here once and handed down; nothing below builds
//! its own.

use std::sync::Arc;
use std::time::Duration;

use crate::http::budget::MemoryBudget;
use crate::http::{App, AppParts};
use crate::metrics::Metrics;
use crate::metrics::instrumented::InstrumentedStore;
use crate::mode::{Mode, ModeOptions};
use crate::query::QueryLimits;
use crate::readiness::{self, Readiness};
use crate::selftest::{self, SelftestReport};
use crate::store::Store;
use crate::store::fs::{FsOptions, FsStore};
use crate::store::gcs::{GcsOptions, GcsStore};
use crate::store::memory::MemoryStore;
use crate::store::redis::{RedisOptions, RedisStore};
use crate::store::s3::{S3Options, S3Store};

/// Which store to open, with its options.
#[derive(Clone, Debug)]
pub enum StoreSettings {
    /// Objects in the process, under a prefix.
    Memory {
        prefix: String,
    },
    Fs(FsOptions),
    S3(S3Options),
    Gcs(GcsOptions),
    Redis(RedisOptions),
}

/// How the application over an opened store behaves.
#[derive(Clone, Debug)]
pub struct AppSettings {
    pub mode: ModeOptions,
    pub query_limits: QueryLimits,
    /// How long a probe's outcome answers `/readyz`.
    pub readiness_max_age: Duration,
    /// The memory budget of request bodies held whole, in bytes.
    pub max_buffered_bytes: u64,
    /// How long a request waits for its share of the budget before it
    /// answers 503.
    pub buffer_wait: Duration,
}

/// Default of [`AppSettings::max_buffered_bytes`].
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 256 << 20;
/// Default of [`AppSettings::buffer_wait`].
pub const DEFAULT_BUFFER_WAIT: Duration = Duration::from_secs(5);

impl AppSettings {
    /// `mode` with the default query limits and readiness interval.
    pub fn new(mode: ModeOptions) -> AppSettings {
        AppSettings {
            mode,
            query_limits: QueryLimits::default(),
            readiness_max_age: readiness::DEFAULT_MAX_AGE,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            buffer_wait: DEFAULT_BUFFER_WAIT,
        }
    }
}

/// Everything a proxy process is built from.
#[derive(Clone, Debug)]
pub struct ConnectorSettings {
    /// `<store>-<mode>`, as reports and logs name the connector.
    pub name: String,
    pub store: StoreSettings,
    pub app: AppSettings,
    /// Refuse to start unless the backend passes the self-test.
    pub selftest: bool,
}

/// Opens the store the settings name, or says why it cannot. Remote
/// stores are only configured here: no request and no credential lookup
/// until the first call that needs the backend.
pub fn open_store(settings: &StoreSettings) -> Result<Arc<dyn Store>, String> {
    Ok(match settings {
        StoreSettings::Memory { prefix } => Arc::new(MemoryStore::new(prefix)),
        StoreSettings::Fs(options) => {
            Arc::new(FsStore::open(options.clone()).map_err(|e| e.to_string())?)
        }
        StoreSettings::S3(options) => Arc::new(S3Store::new(options.clone())?),
        StoreSettings::Gcs(options) => {
            Arc::new(GcsStore::new(options.clone()).map_err(|e| e.to_string())?)
        }
        StoreSettings::Redis(options) => Arc::new(RedisStore::open(options.clone())?),
    })
}

/// The application over an opened store: every backend call is timed
/// and counted, readiness probes the same (instrumented) store, and the
/// mode applies the consistency policy. `selftest` is the report of the
/// check run at start, shown in `/capabilities`.
pub fn assemble(
    store: Arc<dyn Store>,
    settings: &AppSettings,
    selftest: Option<SelftestReport>,
) -> Arc<App> {
    let mode = Mode::new(store, &settings.mode);
    let metrics = Arc::new(Metrics::new(mode.remembered_shared()));
    let timed = Arc::clone(&metrics);
    let mode = mode.wrap_store(|store| Arc::new(InstrumentedStore::new(store, timed)));
    let readiness = Readiness::new(Arc::clone(mode.store()), settings.readiness_max_age);
    Arc::new(App::new(AppParts {
        mode,
        metrics,
        readiness,
        query_limits: settings.query_limits.clone(),
        selftest,
        budget: MemoryBudget::new(settings.max_buffered_bytes, settings.buffer_wait),
    }))
}

/// Opens the store and builds the application, first running the
/// self-test when the settings ask for it: a backend that does not
/// enforce what the connector relies on would lose data silently, so the
/// proxy refuses to start on it.
pub async fn build(settings: &ConnectorSettings) -> Result<Arc<App>, String> {
    let store = open_store(&settings.store)?;
    let report = if settings.selftest {
        let report = selftest::run(store.as_ref(), &settings.name).await;
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
        Some(report)
    } else {
        None
    };
    Ok(assemble(store, &settings.app, report))
}

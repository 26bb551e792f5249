//! Configuration of `state-proxy serve`: flags, with the compat
//! environment variables as fallbacks, and connector names. This is the
//! one place that reads them: it checks every setting and builds the
//! plain option structs of the layers below (stores, mode, queries, the
//! socket server), so that nothing below knows about flags.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args};

use crate::connector::{AppSettings, ConnectorSettings, StoreSettings};
use crate::http::ServerOptions;
use crate::http::connections::ConnectionLimits;
use crate::http::pace::BodyPace;
use crate::logging::LogFormat;
use crate::mode::{Consistency, ModeOptions};
use crate::query::QueryLimits;
use crate::store::fs::FsOptions;
use crate::store::gcs::{self, GcsOptions};
use crate::store::redis::RedisOptions;
use crate::store::s3::{self, S3Options};

/// The backends a connector name can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    Memory,
    Fs,
    S3,
    Gcs,
    Redis,
}

impl StoreKind {
    pub const ALL: [StoreKind; 5] = [
        StoreKind::Memory,
        StoreKind::Fs,
        StoreKind::S3,
        StoreKind::Gcs,
        StoreKind::Redis,
    ];

    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "memory",
            StoreKind::Fs => "fs",
            StoreKind::S3 => "s3",
            StoreKind::Gcs => "gcs",
            StoreKind::Redis => "redis",
        }
    }
}

/// A connector: a store with a consistency mode, named `<store>-<mode>`
/// (`_` and `-` alike); a bare store name means its `buffered-lww`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connector {
    pub store: StoreKind,
    pub consistency: Consistency,
}

impl fmt::Display for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.store.name(), self.consistency)
    }
}

impl FromStr for Connector {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        let normalized = name.trim().replace('_', "-");
        let (store_name, mode_name) = normalized.split_once('-').unwrap_or((&normalized, ""));
        let store = StoreKind::ALL
            .into_iter()
            .find(|store| store.name() == store_name)
            .ok_or_else(|| {
                format!(
                    "unknown connector '{name}': the store must be one of memory, fs, s3, gcs, redis \
                     (a connector is named <store>-<mode>, e.g. s3-buffered-cas)"
                )
            })?;
        let consistency = if mode_name.is_empty() {
            Consistency::BufferedLww
        } else {
            mode_name
                .parse()
                .map_err(|e| format!("unknown connector '{name}': {e}"))?
        };
        Ok(Connector { store, consistency })
    }
}

/// Flags of `state-proxy serve`.
#[derive(Args, Clone, Debug)]
pub struct ServeArgs {
    /// Unix socket to serve on.
    #[arg(long, env = "CONNECTOR_SOCKET", default_value = "./state.sock")]
    pub socket: PathBuf,

    /// Connector, `<store>-<mode>`: store memory, fs, s3, gcs or redis;
    /// mode buffered-lww, buffered-cas or passthrough.
    #[arg(long, env = "ASYA_CONNECTOR", default_value = "fs-buffered-lww")]
    pub connector: Connector,

    /// Prefix of every key in the backend (a directory for `fs`).
    #[arg(long, env = "STATE_PREFIX", default_value = "")]
    pub prefix: String,

    /// Directory of the `fs` store.
    #[arg(long, env = "STATE_DIR", default_value = "./state-data")]
    pub state_dir: PathBuf,

    /// Flush `fs` writes to disk before answering (true/false).
    #[arg(long, env = "STATE_FS_SYNC", default_value_t = true, action = ArgAction::Set)]
    pub fs_sync: bool,

    /// Permissions of the socket file, in octal.
    #[arg(long, env = "STATE_SOCKET_MODE", default_value = "660", value_parser = parse_octal_mode)]
    pub socket_mode: u32,

    /// Largest request body of the buffered modes (bytes, or with a
    /// KiB/MiB/GiB suffix); larger ones answer 413.
    #[arg(long, env = "STATE_MAX_BODY_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// How many keys' versions a compare-and-swap connector remembers.
    #[arg(long, env = "STATE_REMEMBERED_VERSIONS", default_value = "100000")]
    pub remembered_versions: NonZeroUsize,

    /// Seconds to let requests in flight finish after SIGTERM/SIGINT.
    #[arg(long, env = "STATE_SHUTDOWN_GRACE_SECS", default_value = "10", value_parser = parse_seconds)]
    pub shutdown_grace: Duration,

    /// Also serve `/metrics` over TCP on this address (e.g.
    /// 127.0.0.1:9464) for a standard Prometheus; off when unset.
    #[arg(long, env = "STATE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Before serving, check that the backend enforces the conditions the
    /// connector relies on (as `state-proxy selftest` does); refuse to
    /// start when it does not.
    #[arg(long, env = "STATE_SELFTEST")]
    pub selftest: bool,

    /// Log format; the level comes from ASYA_LOG_LEVEL or RUST_LOG.
    #[arg(long, env = "ASYA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub backend: BackendArgs,

    #[command(flatten)]
    pub query: QueryArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Bounds of memory and connections (docs/operations.md, "Limits").
#[derive(Args, Clone, Debug)]
pub struct LimitArgs {
    /// Memory shared by every body the proxy holds (request bodies held
    /// whole, the parts of a streamed upload, values a store reads whole),
    /// in bytes or with a KiB/MiB/GiB suffix; a request that cannot get its
    /// share in time answers 503 with Retry-After, a body larger than all
    /// of it 413.
    #[arg(long, env = "STATE_MAX_BUFFERED_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub max_buffered_bytes: u64,

    /// Seconds a request waits for its share of the memory budget.
    #[arg(long, env = "STATE_BUFFER_WAIT_SECS", default_value = "5", value_parser = parse_seconds)]
    pub buffer_wait: Duration,

    /// Seconds from a request's first byte to the end of its head
    /// (0: no limit).
    #[arg(long, env = "STATE_HEADER_TIMEOUT_SECS", default_value = "30", value_parser = parse_seconds)]
    pub header_timeout: Duration,

    /// Seconds a kept-alive connection may stay idle between requests
    /// (0: no limit).
    #[arg(long, env = "STATE_IDLE_TIMEOUT_SECS", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,

    /// Seconds a request body may take before the minimum rate applies
    /// (0: no limit).
    #[arg(long, env = "STATE_BODY_TIMEOUT_SECS", default_value = "30", value_parser = parse_seconds)]
    pub body_timeout: Duration,

    /// Bytes per second a request body must average after the body
    /// timeout (0: none, the body timeout bounds the whole body).
    #[arg(long, env = "STATE_MIN_BODY_RATE", default_value = "1KiB", value_parser = parse_size)]
    pub min_body_rate: u64,

    /// Seconds an answer may wait for the client to read it (0: no limit).
    #[arg(long, env = "STATE_WRITE_TIMEOUT_SECS", default_value = "60", value_parser = parse_seconds)]
    pub write_timeout: Duration,

    /// Connections served at once; beyond, the one idle the longest is
    /// closed. Default: derived from the descriptor limit (RLIMIT_NOFILE).
    #[arg(long, env = "STATE_MAX_CONNECTIONS", value_parser = parse_count)]
    pub max_connections: Option<usize>,
}

impl LimitArgs {
    /// The connection cap: as configured, or the descriptor limit less a
    /// reserve for the backend's connections and files (an eighth, at
    /// least 64), at most 65 536.
    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or_else(|| connections_for(descriptor_limit()))
    }
}

/// The soft limit of open descriptors of this process.
fn descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    limit.rlim_cur
}

fn connections_for(descriptors: u64) -> usize {
    let reserve = (descriptors / 8).max(64);
    descriptors.saturating_sub(reserve).clamp(16, 65_536) as usize
}

/// Bounds of `POST /query` (names and defaults of the original proxy).
#[derive(Args, Clone, Debug)]
pub struct QueryArgs {
    /// Keys of a query's listing that are considered; a longer listing is
    /// cut (byte order) and the answer says `truncated`.
    #[arg(long, env = "QUERY_MAX_KEYS", default_value = "10000", value_parser = parse_count)]
    pub query_max_keys: usize,

    /// Objects a query reads at most; beyond, the answer says `truncated`.
    #[arg(long, env = "QUERY_MAX_FETCH_KEYS", default_value = "1000", value_parser = parse_count)]
    pub query_max_fetch_keys: usize,

    /// Bytes a query reads at most, in total (bytes, or with a
    /// KiB/MiB/GiB suffix); beyond, the answer says `truncated`.
    #[arg(long, env = "QUERY_MAX_FETCH_BYTES", default_value = "268435456", value_parser = parse_size)]
    pub query_max_fetch_bytes: u64,

    /// Largest `limit` of a query, and what `limit` 0 means.
    #[arg(long, env = "QUERY_MAX_RESULT_ROWS", default_value = "10000", value_parser = parse_count)]
    pub query_max_result_rows: usize,

    /// Objects a query reads at the same time.
    #[arg(long, env = "QUERY_FETCH_CONCURRENCY", default_value = "32", value_parser = parse_count)]
    pub query_fetch_concurrency: usize,
}

impl QueryArgs {
    pub fn limits(&self) -> QueryLimits {
        QueryLimits {
            max_keys: self.query_max_keys,
            max_fetch_keys: self.query_max_fetch_keys,
            max_fetch_bytes: self.query_max_fetch_bytes,
            max_result_rows: self.query_max_result_rows,
            fetch_concurrency: self.query_fetch_concurrency,
        }
    }
}

/// Settings of the remote backends (each store reads its own).
#[derive(Args, Clone, Debug, Default)]
pub struct BackendArgs {
    /// Bucket of the s3 and gcs stores.
    #[arg(long, env = "STATE_BUCKET")]
    pub bucket: Option<String>,

    /// AWS region of the s3 store.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub aws_region: String,

    /// S3 endpoint (emulators, S3-compatible servers): path-style, plain
    /// HTTP allowed.
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub aws_endpoint_url: Option<String>,

    /// Google Cloud project of the gcs store.
    #[arg(long, env = "GCS_PROJECT")]
    pub gcs_project: Option<String>,

    /// GCS emulator address (e.g. http://127.0.0.1:4443): no authentication.
    #[arg(long, env = "STORAGE_EMULATOR_HOST")]
    pub storage_emulator_host: Option<String>,

    /// Redis URL of the redis store (redis:// or rediss://, with user,
    /// password and database).
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Seconds a presigned or signed URL from /meta stays valid.
    #[arg(long, env = "STATE_PRESIGN_TTL", default_value = "3600", value_parser = parse_seconds)]
    pub presign_ttl: Duration,

    /// Seconds a backend call may take before the request answers 504.
    #[arg(long, env = "STATE_BACKEND_TIMEOUT_SECS", default_value = "30", value_parser = parse_seconds)]
    pub backend_timeout: Duration,
}

impl BackendArgs {
    /// The bucket, or the one-line start-up error naming the variable.
    pub fn require_bucket(&self, store: &str) -> Result<&str, String> {
        required(self.bucket.as_deref(), "STATE_BUCKET", "--bucket", store)
    }

    /// The settings of the `s3` store, checked; nothing is contacted.
    pub fn s3_options(&self, prefix: &str) -> Result<S3Options, String> {
        let bucket = self.require_bucket("s3")?.to_owned();
        let endpoint = match self.aws_endpoint_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(url) => Some(http_base("AWS_ENDPOINT_URL", url, url)?),
        };
        let region = self.aws_region.trim();
        if region.is_empty() {
            return Err("AWS_REGION must not be empty for the s3 store".to_owned());
        }
        Ok(S3Options {
            bucket,
            prefix: prefix.to_owned(),
            region: region.to_owned(),
            endpoint,
            presign_ttl: self.presign_ttl("S3 presigned URLs", s3::MAX_PRESIGN_SECS)?,
            timeout: self.backend_timeout("s3")?,
        })
    }

    /// The settings of the `gcs` store, checked; nothing is contacted.
    pub fn gcs_options(&self, prefix: &str) -> Result<GcsOptions, String> {
        let bucket = self.require_bucket("gcs")?.to_owned();
        // As Google's clients read it: a URL, or a bare `host:port`
        // meaning plain HTTP.
        let emulator = match self.storage_emulator_host.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(host) if host.contains("://") => {
                Some(http_base("STORAGE_EMULATOR_HOST", host, host)?)
            }
            Some(host) => Some(http_base(
                "STORAGE_EMULATOR_HOST",
                host,
                &format!("http://{host}"),
            )?),
        };
        let project = self
            .gcs_project
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        Ok(GcsOptions {
            bucket,
            prefix: prefix.to_owned(),
            project,
            emulator,
            presign_ttl: self.presign_ttl("GCS signed URLs", gcs::MAX_SIGNED_URL_SECS)?,
            timeout: self.backend_timeout("gcs")?,
        })
    }

    /// The settings of the `redis` store; the URL itself is parsed when
    /// the store opens.
    pub fn redis_options(&self, prefix: &str) -> Result<RedisOptions, String> {
        let url = required(
            self.redis_url.as_deref(),
            "REDIS_URL",
            "--redis-url",
            "redis",
        )?;
        Ok(RedisOptions {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            timeout: self.backend_timeout,
        })
    }

    /// `STATE_PRESIGN_TTL`, within what the backend's signatures allow.
    fn presign_ttl(&self, what: &str, max_secs: u64) -> Result<Duration, String> {
        let ttl = self.presign_ttl.as_secs();
        if !(1..=max_secs).contains(&ttl) {
            return Err(format!(
                "STATE_PRESIGN_TTL is {ttl} s; {what} need 1 to {max_secs} s (7 days)"
            ));
        }
        Ok(Duration::from_secs(ttl))
    }

    /// `STATE_BACKEND_TIMEOUT_SECS` of a store that needs one above zero.
    fn backend_timeout(&self, store: &str) -> Result<Duration, String> {
        if self.backend_timeout.is_zero() {
            return Err(format!(
                "STATE_BACKEND_TIMEOUT_SECS must be above 0 for the {store} store"
            ));
        }
        Ok(self.backend_timeout)
    }
}

/// The base URL of an HTTP backend: `http` or `https` with a host, without
/// a trailing slash. `given` is what the variable said, for the message.
fn http_base(variable: &str, given: &str, url: &str) -> Result<String, String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("{variable}={given:?} is not a host or URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "{variable}={given:?} must be an http(s) URL such as http://127.0.0.1:5000"
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// A setting a store cannot start without; empty counts as missing.
pub fn required<'a>(
    value: Option<&'a str>,
    env: &str,
    flag: &str,
    store: &str,
) -> Result<&'a str, String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{env} is required for the {store} store (or the flag {flag})"))
}

impl ServeArgs {
    pub fn mode_options(&self) -> ModeOptions {
        ModeOptions {
            consistency: self.connector.consistency,
            max_body_bytes: self.max_body_bytes,
            remembered_versions: self.remembered_versions,
        }
    }

    /// Everything the composition root needs, checked: a missing or
    /// invalid setting is the one-line start-up error naming it.
    pub fn connector_settings(&self) -> Result<ConnectorSettings, String> {
        Ok(ConnectorSettings {
            name: self.connector.to_string(),
            store: self.store_settings()?,
            app: AppSettings {
                query_limits: self.query.limits(),
                max_buffered_bytes: self.limits.max_buffered_bytes,
                buffer_wait: self.limits.buffer_wait,
                ..AppSettings::new(self.mode_options())
            },
            selftest: self.selftest,
        })
    }

    fn store_settings(&self) -> Result<StoreSettings, String> {
        let prefix = &self.prefix;
        Ok(match self.connector.store {
            StoreKind::Memory => StoreSettings::Memory {
                prefix: prefix.clone(),
            },
            StoreKind::Fs => StoreSettings::Fs(FsOptions {
                dir: self.state_dir.clone(),
                prefix: prefix.clone(),
                sync: self.fs_sync,
            }),
            StoreKind::S3 => StoreSettings::S3(self.backend.s3_options(prefix)?),
            StoreKind::Gcs => StoreSettings::Gcs(self.backend.gcs_options(prefix)?),
            StoreKind::Redis => StoreSettings::Redis(self.backend.redis_options(prefix)?),
        })
    }

    /// How the socket server runs.
    pub fn server_options(&self) -> ServerOptions {
        let limits = &self.limits;
        ServerOptions {
            connections: ConnectionLimits {
                header_timeout: limits.header_timeout,
                idle_timeout: limits.idle_timeout,
                write_timeout: limits.write_timeout,
                max_connections: limits.max_connections(),
            },
            body_pace: BodyPace {
                timeout: limits.body_timeout,
                min_rate: limits.min_body_rate,
            },
            ..ServerOptions::new(self.socket_mode, self.shutdown_grace)
        }
    }
}

fn parse_octal_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!(
            "'{text}' is not an octal permission mode such as 660"
        )),
    }
}

/// `1048576`, `64MiB`, `1GiB`, `512KiB` (also `K`, `M`, `G`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let multiplier: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => {
            return Err(format!(
                "'{text}' is not a size such as 1048576, 512KiB or 64MiB"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| format!("'{text}' is not a size such as 1048576, 512KiB or 64MiB"))
}

/// A positive whole number (a count of keys, rows, reads).
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err(format!("'{text}' is not a positive whole number")),
    }
}

pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_stays_below_the_descriptor_limit() {
        assert_eq!(connections_for(1024), 896);
        assert_eq!(connections_for(256), 192);
        assert_eq!(connections_for(20), 16);
        assert_eq!(connections_for(1 << 20), 65_536);
    }

    #[test]
    fn the_six_asya_connectors_parse_in_both_spellings() {
        for (name, store, consistency) in [
            ("s3-buffered-lww", StoreKind::S3, Consistency::BufferedLww),
            ("s3-buffered-cas", StoreKind::S3, Consistency::BufferedCas),
            ("s3-passthrough", StoreKind::S3, Consistency::Passthrough),
            ("gcs-buffered-lww", StoreKind::Gcs, Consistency::BufferedLww),
            ("gcs-buffered-cas", StoreKind::Gcs, Consistency::BufferedCas),
            (
                "redis-buffered-cas",
                StoreKind::Redis,
                Consistency::BufferedCas,
            ),
        ] {
            let expected = Connector { store, consistency };
            assert_eq!(name.parse::<Connector>(), Ok(expected));
            assert_eq!(name.replace('-', "_").parse::<Connector>(), Ok(expected));
            assert_eq!(expected.to_string(), name);
        }
    }

    #[test]
    fn bare_store_means_buffered_lww() {
        let connector: Connector = "fs".parse().unwrap();
        assert_eq!(connector.to_string(), "fs-buffered-lww");
    }

    #[test]
    fn unknown_names_say_what_is_known() {
        let store = "ftp-buffered-lww".parse::<Connector>().unwrap_err();
        assert!(store.contains("memory, fs, s3, gcs, redis"), "{store}");
        let mode = "fs-eventual".parse::<Connector>().unwrap_err();
        assert!(mode.contains("known modes"), "{mode}");
    }

    #[test]
    fn missing_required_settings_name_the_variable() {
        let backend = BackendArgs::default();
        assert_eq!(
            backend.require_bucket("s3"),
            Err("STATE_BUCKET is required for the s3 store (or the flag --bucket)".to_owned())
        );
        let blank = BackendArgs {
            bucket: Some("  ".into()),
            ..BackendArgs::default()
        };
        assert!(blank.require_bucket("gcs").is_err());
    }

    fn backend_args() -> BackendArgs {
        BackendArgs {
            bucket: Some("state".to_owned()),
            aws_region: "us-east-1".to_owned(),
            presign_ttl: Duration::from_secs(3600),
            backend_timeout: Duration::from_secs(30),
            ..BackendArgs::default()
        }
    }

    #[test]
    fn s3_options_need_a_bucket_a_valid_endpoint_and_ttl() {
        let missing = BackendArgs::default().s3_options("").unwrap_err();
        assert!(missing.contains("STATE_BUCKET"), "{missing}");
        let long = BackendArgs {
            presign_ttl: Duration::from_secs(s3::MAX_PRESIGN_SECS + 1),
            ..backend_args()
        };
        assert!(
            long.s3_options("")
                .unwrap_err()
                .contains("STATE_PRESIGN_TTL")
        );
        let bad = BackendArgs {
            aws_endpoint_url: Some("ftp://x".to_owned()),
            ..backend_args()
        };
        assert!(bad.s3_options("").unwrap_err().contains("AWS_ENDPOINT_URL"));
        let never = BackendArgs {
            backend_timeout: Duration::ZERO,
            ..backend_args()
        };
        assert!(
            never
                .s3_options("")
                .unwrap_err()
                .contains("STATE_BACKEND_TIMEOUT_SECS")
        );
        let emulator = BackendArgs {
            aws_endpoint_url: Some("http://127.0.0.1:5000/".to_owned()),
            ..backend_args()
        };
        let options = emulator.s3_options("p").unwrap();
        assert_eq!(options.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let production = backend_args().s3_options("p").unwrap();
        assert_eq!(production.endpoint, None);
        assert_eq!(
            (production.bucket.as_str(), production.region.as_str()),
            ("state", "us-east-1")
        );
    }

    #[test]
    fn gcs_options_need_a_bucket_and_a_valid_ttl() {
        let missing = BackendArgs::default().gcs_options("").unwrap_err();
        assert!(missing.contains("STATE_BUCKET"), "{missing}");
        let long = BackendArgs {
            presign_ttl: Duration::from_secs(gcs::MAX_SIGNED_URL_SECS + 1),
            ..backend_args()
        };
        let refused = long.gcs_options("").unwrap_err();
        assert!(refused.contains("STATE_PRESIGN_TTL"), "{refused}");
        let production = backend_args().gcs_options("p").unwrap();
        assert_eq!(production.emulator, None);
        assert_eq!(production.bucket, "state");
    }

    #[test]
    fn the_gcs_emulator_variable_is_a_url_or_host_and_port() {
        for (host, base) in [
            ("127.0.0.1:4443", "http://127.0.0.1:4443"),
            ("http://127.0.0.1:4443/", "http://127.0.0.1:4443"),
            ("https://gcs.local:8443", "https://gcs.local:8443"),
        ] {
            let args = BackendArgs {
                storage_emulator_host: Some(host.to_owned()),
                ..backend_args()
            };
            let options = args.gcs_options("").unwrap();
            assert_eq!(options.emulator.as_deref(), Some(base));
        }
        let bad = BackendArgs {
            storage_emulator_host: Some("ftp://x".to_owned()),
            ..backend_args()
        };
        assert!(bad.gcs_options("").is_err());
    }

    #[test]
    fn a_connector_names_its_store_and_mode() {
        use clap::Parser;
        #[derive(clap::Parser, Debug)]
        struct Flags {
            #[command(flatten)]
            serve: ServeArgs,
        }
        let flags = Flags::try_parse_from([
            "x",
            "--connector=redis_buffered_cas",
            "--redis-url=redis://127.0.0.1:1",
            "--prefix=p",
        ])
        .unwrap();
        let settings = flags.serve.connector_settings().unwrap();
        assert_eq!(settings.name, "redis-buffered-cas");
        assert_eq!(settings.app.mode.consistency, Consistency::BufferedCas);
        let StoreSettings::Redis(options) = settings.store else {
            panic!("a redis store: {:?}", settings.store);
        };
        assert_eq!(
            (options.url.as_str(), options.prefix.as_str()),
            ("redis://127.0.0.1:1", "p")
        );
        let without = BackendArgs::default().redis_options("").unwrap_err();
        assert!(without.contains("REDIS_URL"), "{without}");
    }

    #[derive(clap::Parser, Debug)]
    struct QueryFlags {
        #[command(flatten)]
        query: QueryArgs,
    }

    #[test]
    fn query_limits_default_to_the_protocol_and_refuse_nonsense() {
        use clap::Parser;
        let defaults = QueryFlags::try_parse_from(["x"]).unwrap().query.limits();
        assert_eq!(defaults, QueryLimits::default());
        let set = QueryFlags::try_parse_from([
            "x",
            "--query-max-keys=50",
            "--query-max-fetch-keys=40",
            "--query-max-fetch-bytes=4KiB",
            "--query-max-result-rows=10",
        ])
        .unwrap()
        .query
        .limits();
        assert_eq!(
            (
                set.max_keys,
                set.max_fetch_keys,
                set.max_fetch_bytes,
                set.max_result_rows
            ),
            (50, 40, 4096, 10)
        );
        for bad in [
            "--query-max-keys=0",
            "--query-max-fetch-keys=many",
            "--query-max-fetch-bytes=-1",
            "--query-max-result-rows=1.5",
        ] {
            let error = QueryFlags::try_parse_from(["x", bad])
                .unwrap_err()
                .to_string();
            let flag = bad.split('=').next().unwrap();
            assert!(error.contains(flag), "{bad}: {error}");
        }
    }

    #[test]
    fn sizes_and_modes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(parse_octal_mode("660"), Ok(0o660));
        assert_eq!(parse_octal_mode("0o600"), Ok(0o600));
        assert!(parse_octal_mode("999").is_err());
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_count("1000"), Ok(1000));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-5").is_err());
        assert!(parse_count("1e3").is_err());
        assert!(parse_seconds("-1").is_err());
    }
}

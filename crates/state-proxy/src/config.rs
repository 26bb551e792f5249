//! Configuration of `state-proxy serve`: flags, with the compat
//! environment variables as fallbacks, and connector names.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{ArgAction, Args, ValueEnum};

use crate::mode::{Consistency, ModeOptions};
use crate::query::QueryLimits;

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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

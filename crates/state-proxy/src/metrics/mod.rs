//! Prometheus metrics of one proxy: the registry and its families.
//!
//! Every label has a bounded set of values (the route's name, never the
//! key; the method; the status; the backend operation and an error code),
//! so a busy proxy cannot grow the registry without bound. The names and
//! their meaning are listed in docs/operations.md.
//!
//! The series written on every request live in index-addressed, per-thread
//! sharded tables ([`sharded`]) that a collector turns into the
//! exposition at scrape time: no label set is hashed and no cache line is
//! shared between cores on the request path. Only series that occurred
//! are exported.

pub mod instrumented;
mod sharded;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use self::sharded::{Cells, Histograms};
use crate::error::{Error, ErrorKind};
use crate::mode::RememberedVersions;

/// `Content-Type` of the exposition (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: from 50 µs (a memory
/// store answers in tens of microseconds) to 30 s (the default backend
/// timeout).
static LATENCY_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The routes, as the request metrics label them (never the key, so the
/// number of series stays bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteName {
    Healthz,
    Readyz,
    Capabilities,
    Metrics,
    /// The listing, `/keys/`.
    Keys,
    /// One key, `/keys/{key}`.
    Key,
    Meta,
    Query,
    Unknown,
}

impl RouteName {
    const ALL: [RouteName; 9] = [
        RouteName::Healthz,
        RouteName::Readyz,
        RouteName::Capabilities,
        RouteName::Metrics,
        RouteName::Keys,
        RouteName::Key,
        RouteName::Meta,
        RouteName::Query,
        RouteName::Unknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RouteName::Healthz => "healthz",
            RouteName::Readyz => "readyz",
            RouteName::Capabilities => "capabilities",
            RouteName::Metrics => "metrics",
            RouteName::Keys => "keys",
            RouteName::Key => "key",
            RouteName::Meta => "meta",
            RouteName::Query => "query",
            RouteName::Unknown => "unknown",
        }
    }
}

/// The calls of the `Store` trait, as the backend histogram labels them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendOperation {
    Get,
    Head,
    Put,
    Delete,
    List,
    GetAttr,
    SetAttr,
    Probe,
}

impl BackendOperation {
    const ALL: [BackendOperation; 8] = [
        BackendOperation::Get,
        BackendOperation::Head,
        BackendOperation::Put,
        BackendOperation::Delete,
        BackendOperation::List,
        BackendOperation::GetAttr,
        BackendOperation::SetAttr,
        BackendOperation::Probe,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendOperation::Get => "get",
            BackendOperation::Head => "head",
            BackendOperation::Put => "put",
            BackendOperation::Delete => "delete",
            BackendOperation::List => "list",
            BackendOperation::GetAttr => "get_attr",
            BackendOperation::SetAttr => "set_attr",
            BackendOperation::Probe => "probe",
        }
    }
}

/// The method labels: the methods the protocol serves, then `other`.
const METHODS: [&str; 6] = ["GET", "HEAD", "PUT", "DELETE", "POST", "other"];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::DELETE => 3,
        Method::POST => 4,
        _ => 5,
    }
}

/// The statuses the proxy answers with; anything else is counted under
/// the label `other`.
const STATUSES: [&str; 15] = [
    "200", "204", "400", "403", "404", "405", "409", "412", "413", "500", "501", "502", "503",
    "504", "other",
];

fn status_index(status: StatusCode) -> usize {
    match status.as_u16() {
        200 => 0,
        204 => 1,
        400 => 2,
        403 => 3,
        404 => 4,
        405 => 5,
        409 => 6,
        412 => 7,
        413 => 8,
        500 => 9,
        501 => 10,
        502 => 11,
        503 => 12,
        504 => 13,
        _ => 14,
    }
}

/// Outcomes of backend calls: `ok`, then one per error kind, labelled
/// by the kind's table (`crate::error`).
const OUTCOMES: usize = 1 + ErrorKind::ALL.len();

fn outcome_index<T>(result: &Result<T, Error>) -> usize {
    match result {
        Ok(_) => 0,
        Err(error) => 1 + error.kind().index(),
    }
}

fn outcome_label(index: usize) -> &'static str {
    match index {
        0 => "ok",
        kind => ErrorKind::ALL[kind - 1].label(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    route: &'static str,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabels {
    operation: &'static str,
    /// `ok`, or the error code of the failure (`key_not_found`, ...).
    outcome: &'static str,
}

/// Index of the received and sent byte counters in [`Hot::bytes`].
const RECEIVED: usize = 0;
const SENT: usize = 1;

/// The series written on the request path.
struct Hot {
    /// By route × method × status.
    requests: Cells,
    /// By route × method.
    request_latency: Histograms,
    /// By operation × outcome.
    backend_latency: Histograms,
    bytes: Cells,
}

impl Hot {
    fn new() -> Hot {
        let routes = RouteName::ALL.len();
        Hot {
            requests: Cells::new(routes * METHODS.len() * STATUSES.len()),
            request_latency: Histograms::new(&LATENCY_BUCKETS, routes * METHODS.len()),
            backend_latency: Histograms::new(
                &LATENCY_BUCKETS,
                BackendOperation::ALL.len() * OUTCOMES,
            ),
            bytes: Cells::new(2),
        }
    }
}

/// The metrics of one proxy process.
pub struct Metrics {
    registry: Registry,
    hot: Arc<Hot>,
    conflicts: Counter,
    precondition_failures: Counter,
}

impl Metrics {
    /// A registry with every family; `remembered` is the version cache of
    /// a compare-and-swap proxy, read at each scrape.
    pub fn new(remembered: Option<Arc<RememberedVersions>>) -> Metrics {
        let mut registry = Registry::with_prefix("state_proxy");
        let hot = Arc::new(Hot::new());
        registry.register_collector(Box::new(HotCollector(Arc::clone(&hot))));
        let conflicts = Counter::default();
        registry.register(
            "conflicts",
            "Answers 409 conflict (compare-and-swap conflicts, clashing keys)",
            conflicts.clone(),
        );
        let precondition_failures = Counter::default();
        registry.register(
            "precondition_failures",
            "Answers 412 precondition failed (If-Match / If-None-Match did not hold)",
            precondition_failures.clone(),
        );
        if let Some(remembered) = remembered {
            registry.register_collector(Box::new(RememberedCollector(remembered)));
        }
        Metrics {
            registry,
            hot,
            conflicts,
            precondition_failures,
        }
    }

    /// Counts one answered request and its latency.
    pub fn record_request(
        &self,
        route: RouteName,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let route_method = route as usize * METHODS.len() + method_index(method);
        self.hot
            .requests
            .add(route_method * STATUSES.len() + status_index(status), 1);
        self.hot.request_latency.observe(route_method, elapsed);
        match status {
            StatusCode::CONFLICT => {
                self.conflicts.inc();
            }
            StatusCode::PRECONDITION_FAILED => {
                self.precondition_failures.inc();
            }
            _ => {}
        }
    }

    /// Records one backend call.
    pub fn record_backend<T>(
        &self,
        operation: BackendOperation,
        result: &Result<T, Error>,
        elapsed: Duration,
    ) {
        let series = operation as usize * OUTCOMES + outcome_index(result);
        self.hot.backend_latency.observe(series, elapsed);
    }

    pub fn count_received(&self, bytes: u64) {
        if bytes > 0 {
            self.hot.bytes.add(RECEIVED, bytes);
        }
    }

    pub fn count_sent(&self, bytes: u64) {
        if bytes > 0 {
            self.hot.bytes.add(SENT, bytes);
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Turns the sharded request-path tables into the exposition.
struct HotCollector(Arc<Hot>);

impl fmt::Debug for HotCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotCollector").finish_non_exhaustive()
    }
}

impl Collector for HotCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let hot = &self.0;
        let mut family = encoder.encode_descriptor(
            "requests",
            "Requests answered, by route, method and status",
            None,
            MetricType::Counter,
        )?;
        for (r, route) in RouteName::ALL.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (s, status) in STATUSES.iter().enumerate() {
                    let count = hot
                        .requests
                        .get((r * METHODS.len() + m) * STATUSES.len() + s);
                    if count > 0 {
                        let labels = RequestLabels {
                            route: route.name(),
                            method,
                            status,
                        };
                        ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
                    }
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "request_duration",
            "Time from a request's arrival to its response headers, by route and method",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (r, route) in RouteName::ALL.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                let snapshot = hot.request_latency.snapshot(r * METHODS.len() + m);
                if snapshot.count > 0 {
                    let labels = LatencyLabels {
                        route: route.name(),
                        method,
                    };
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(
                            snapshot.sum_seconds,
                            snapshot.count,
                            &snapshot.buckets,
                            None,
                        )?;
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "backend_duration",
            "Time spent in calls to the storage backend, by operation and outcome",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (o, operation) in BackendOperation::ALL.iter().enumerate() {
            for x in 0..OUTCOMES {
                let snapshot = hot.backend_latency.snapshot(o * OUTCOMES + x);
                if snapshot.count > 0 {
                    let labels = BackendLabels {
                        operation: operation.name(),
                        outcome: outcome_label(x),
                    };
                    family
                        .encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(
                            snapshot.sum_seconds,
                            snapshot.count,
                            &snapshot.buckets,
                            None,
                        )?;
                }
            }
        }

        for (index, name, help) in [
            (RECEIVED, "received", "Request body bytes read from clients"),
            (SENT, "sent", "Response body bytes handed to clients"),
        ] {
            let counter = ConstCounter::new(hot.bytes.get(index));
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                Some(&Unit::Bytes),
                counter.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

/// Reads the remembered-version cache at each scrape, so that the mode
/// layer keeps its own counters and knows nothing of Prometheus.
struct RememberedCollector(Arc<RememberedVersions>);

impl fmt::Debug for RememberedCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RememberedCollector")
            .finish_non_exhaustive()
    }
}

impl Collector for RememberedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let size = ConstGauge::new(self.0.len() as i64);
        size.encode(encoder.encode_descriptor(
            "remembered_versions",
            "Keys whose last seen version a compare-and-swap proxy remembers",
            None,
            size.metric_type(),
        )?)?;
        let capacity = ConstGauge::new(self.0.capacity() as i64);
        capacity.encode(encoder.encode_descriptor(
            "remembered_versions_capacity",
            "Most keys remembered (STATE_REMEMBERED_VERSIONS)",
            None,
            capacity.metric_type(),
        )?)?;
        let evictions = ConstCounter::new(self.0.evictions());
        evictions.encode(encoder.encode_descriptor(
            "remembered_version_evictions",
            "Keys forgotten to make room (their next plain write is unconditional)",
            None,
            evictions.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::key::Key;
    use crate::store::Version;

    /// The value of one sample line, e.g. `name{labels} 3`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
    }

    #[test]
    fn requests_are_counted_by_route_method_and_status() {
        let metrics = Metrics::new(None);
        let took = Duration::from_millis(3);
        metrics.record_request(RouteName::Key, &Method::PUT, StatusCode::NO_CONTENT, took);
        metrics.record_request(RouteName::Key, &Method::PUT, StatusCode::NO_CONTENT, took);
        metrics.record_request(RouteName::Key, &Method::PUT, StatusCode::CONFLICT, took);
        metrics.record_request(
            RouteName::Key,
            &Method::PUT,
            StatusCode::PRECONDITION_FAILED,
            took,
        );
        metrics.record_request(
            RouteName::Unknown,
            &Method::PATCH,
            StatusCode::NOT_FOUND,
            took,
        );
        let text = metrics.encode();
        let put = r#"state_proxy_requests_total{route="key",method="PUT",status="204"}"#;
        assert_eq!(sample(&text, put), Some(2.0), "{text}");
        let other = r#"state_proxy_requests_total{route="unknown",method="other",status="404"}"#;
        assert_eq!(sample(&text, other), Some(1.0), "{text}");
        assert_eq!(sample(&text, "state_proxy_conflicts_total"), Some(1.0));
        assert_eq!(
            sample(&text, "state_proxy_precondition_failures_total"),
            Some(1.0)
        );
        let count = r#"state_proxy_request_duration_seconds_count{route="key",method="PUT"}"#;
        assert_eq!(sample(&text, count), Some(4.0), "{text}");
        // 3 ms falls in the 5 ms bucket and above, not in the 2.5 ms one.
        let bucket = |le: &str| {
            sample(
                &text,
                &format!(
                    r#"state_proxy_request_duration_seconds_bucket{{le="{le}",route="key",method="PUT"}}"#
                ),
            )
        };
        assert_eq!(bucket("0.0025"), Some(0.0), "{text}");
        assert_eq!(bucket("0.005"), Some(4.0), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn backend_calls_are_labelled_by_operation_and_outcome() {
        let metrics = Metrics::new(None);
        let took = Duration::from_micros(200);
        metrics.record_backend(BackendOperation::Get, &Ok(()), took);
        metrics.record_backend::<()>(BackendOperation::Get, &Err(Error::key_not_found("k")), took);
        metrics.record_backend::<()>(
            BackendOperation::Probe,
            &Err(Error::new(ErrorKind::Unavailable, "down")),
            took,
        );
        let text = metrics.encode();
        for (series, value) in [
            (
                r#"state_proxy_backend_duration_seconds_count{operation="get",outcome="ok"}"#,
                1.0,
            ),
            (
                r#"state_proxy_backend_duration_seconds_count{operation="get",outcome="key_not_found"}"#,
                1.0,
            ),
            (
                r#"state_proxy_backend_duration_seconds_count{operation="probe",outcome="unavailable"}"#,
                1.0,
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
    }

    #[test]
    fn body_bytes_are_counted_both_ways() {
        let metrics = Metrics::new(None);
        metrics.count_received(100);
        metrics.count_received(0);
        metrics.count_sent(42);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "state_proxy_received_bytes_total"),
            Some(100.0)
        );
        assert_eq!(sample(&text, "state_proxy_sent_bytes_total"), Some(42.0));
    }

    #[test]
    fn the_remembered_version_cache_is_read_at_each_scrape() {
        let remembered = Arc::new(RememberedVersions::new(NonZeroUsize::new(2).unwrap()));
        let metrics = Metrics::new(Some(Arc::clone(&remembered)));
        let text = metrics.encode();
        assert_eq!(sample(&text, "state_proxy_remembered_versions"), Some(0.0));
        for k in ["a", "b", "c"] {
            remembered.remember(&Key::parse(k).unwrap(), Version::new("1"));
        }
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "state_proxy_remembered_versions"),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            sample(&text, "state_proxy_remembered_versions_capacity"),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "state_proxy_remembered_version_evictions_total"),
            Some(1.0),
            "{text}"
        );
    }

    #[test]
    fn proxies_without_a_cache_do_not_export_one() {
        let text = Metrics::new(None).encode();
        assert!(!text.contains("remembered"), "{text}");
    }
}

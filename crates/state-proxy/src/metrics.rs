//! Prometheus metrics of one proxy: the registry and its typed families.
//!
//! Every label has a bounded set of values (the route's name, never the
//! key; the method; the status; the backend operation and an error code),
//! so a busy proxy cannot grow the registry without bound. The names and
//! their meaning are listed in docs/operations.md.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::error::Error;
use crate::mode::RememberedVersions;

/// `Content-Type` of the exposition (OpenMetrics text, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, in seconds: from 50 µs (a memory
/// store answers in tens of microseconds) to 30 s (the default backend
/// timeout).
const LATENCY_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
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

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The metrics of one proxy process.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<LatencyLabels>,
    backend_duration: HistogramFamily<BackendLabels>,
    received_bytes: Counter,
    sent_bytes: Counter,
    conflicts: Counter,
    precondition_failures: Counter,
}

impl Metrics {
    /// A registry with every family; `remembered` is the version cache of
    /// a compare-and-swap proxy, read at each scrape.
    pub fn new(remembered: Option<Arc<RememberedVersions>>) -> Metrics {
        let mut registry = Registry::with_prefix("state_proxy");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route, method and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<LatencyLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response headers, by route and method",
            Unit::Seconds,
            request_duration.clone(),
        );
        let backend_duration: HistogramFamily<BackendLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "backend_duration",
            "Time spent in calls to the storage backend, by operation and outcome",
            Unit::Seconds,
            backend_duration.clone(),
        );
        let received_bytes = Counter::default();
        registry.register_with_unit(
            "received",
            "Request body bytes read from clients",
            Unit::Bytes,
            received_bytes.clone(),
        );
        let sent_bytes = Counter::default();
        registry.register_with_unit(
            "sent",
            "Response body bytes handed to clients",
            Unit::Bytes,
            sent_bytes.clone(),
        );
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
            requests,
            request_duration,
            backend_duration,
            received_bytes,
            sent_bytes,
            conflicts,
            precondition_failures,
        }
    }

    /// Counts one answered request and its latency.
    pub fn record_request(
        &self,
        route: &'static str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status: status.as_u16(),
            })
            .inc();
        self.request_duration
            .get_or_create(&LatencyLabels { route, method })
            .observe(elapsed.as_secs_f64());
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
        let outcome = match result {
            Ok(_) => "ok",
            Err(error) => error.code(),
        };
        self.backend_duration
            .get_or_create(&BackendLabels {
                operation: operation.name(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_received(&self, bytes: u64) {
        if bytes > 0 {
            self.received_bytes.inc_by(bytes);
        }
    }

    /// The counter of response bytes, for bodies that are counted as
    /// they stream out.
    pub fn sent_bytes(&self) -> &Counter {
        &self.sent_bytes
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A bounded label for the method: the ones the protocol serves, or
/// `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::POST => "POST",
        _ => "other",
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
        metrics.record_request("key", &Method::PUT, StatusCode::NO_CONTENT, took);
        metrics.record_request("key", &Method::PUT, StatusCode::NO_CONTENT, took);
        metrics.record_request("key", &Method::PUT, StatusCode::CONFLICT, took);
        metrics.record_request("key", &Method::PUT, StatusCode::PRECONDITION_FAILED, took);
        metrics.record_request("unknown", &Method::PATCH, StatusCode::NOT_FOUND, took);
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
        metrics.record_backend::<()>(
            BackendOperation::Get,
            &Err(Error::KeyNotFound("k".into())),
            took,
        );
        metrics.record_backend::<()>(
            BackendOperation::Probe,
            &Err(Error::Unavailable("down".into())),
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
        metrics.sent_bytes().inc_by(42);
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

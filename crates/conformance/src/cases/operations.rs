//! What operators and clients see of the proxy itself: `/capabilities`,
//! `/readyz`, `/metrics` and the `Server-Timing` header.

use http::Method;
use state_client::{Condition, Readiness, key_path};

use super::{Case, Outcome, case, doing, ensure, ensure_eq, expect_error_body, request};
use crate::Ctx;
use crate::profile::Consistency;

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(capabilities_describe_the_connector),
        case!(readyz_answers_ready),
        case!(metrics_count_requests_and_backend_calls),
        case!(server_timing_on_every_answer),
        case!(operational_routes_are_read_only),
    ]
}

async fn capabilities_describe_the_connector(cx: &Ctx<'_>) -> Outcome {
    let profile = cx.profile();
    let answer = request(cx, Method::GET, "/capabilities", &[], "").await?;
    ensure_eq!(answer.status.as_u16(), 200, "GET /capabilities");
    ensure_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "content type"
    );
    let caps = doing("GET /capabilities", cx.client.capabilities().await)?;
    ensure_eq!(caps.connector, profile.connector, "connector");
    ensure_eq!(caps.store, profile.store, "store");
    let mode = match profile.consistency {
        Consistency::Lww => "buffered-lww",
        Consistency::Cas => "buffered-cas",
        Consistency::Passthrough => "passthrough",
    };
    ensure_eq!(caps.mode.as_str(), mode, "mode");
    ensure!(
        caps.create_if_absent && caps.if_match_writes,
        "every connector serves If-None-Match: * and If-Match writes: {caps:?}"
    );
    ensure_eq!(
        caps.conditional_delete,
        profile.conditional_delete,
        "conditional_delete"
    );
    ensure_eq!(caps.streaming, profile.streams(), "streaming");
    ensure_eq!(
        caps.remembered_versions.is_some(),
        profile.cas(),
        "remembered_versions is set exactly for compare-and-swap"
    );
    ensure_eq!(caps.nested_keys, profile.nested_keys, "nested_keys");
    let xattrs: Vec<(String, bool)> = caps
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.settable))
        .collect();
    let expected: Vec<(String, bool)> = profile
        .attrs
        .iter()
        .map(|a| (a.name.to_owned(), a.settable.is_some()))
        .collect();
    ensure_eq!(xattrs, expected, "xattrs");
    let ttl_attr = profile.attrs.iter().any(|a| a.name == "ttl");
    ensure_eq!(caps.ttl, ttl_attr, "ttl");
    if profile.streams() {
        ensure_eq!(
            caps.max_body_bytes,
            None,
            "max_body_bytes of a streaming mode"
        );
    } else if let Some(limit) = profile.body_limit {
        ensure_eq!(caps.max_body_bytes, Some(limit), "max_body_bytes");
    } else {
        ensure!(
            caps.max_body_bytes.is_some(),
            "a buffered mode must report its body limit"
        );
    }
    // The body limit it reports is the one it enforces.
    if let Some(limit) = caps.max_body_bytes.filter(|limit| *limit < 64 << 20) {
        let key = cx.key("too-large");
        let too_large = vec![0u8; limit as usize + 1];
        let answer = request(cx, Method::PUT, &key_path("keys", &key), &[], too_large).await?;
        ensure_eq!(answer.status.as_u16(), 413, "PUT of max_body_bytes + 1");
    }
    Ok(())
}

async fn readyz_answers_ready(cx: &Ctx<'_>) -> Outcome {
    let answer = request(cx, Method::GET, "/readyz", &[], "").await?;
    ensure_eq!(answer.status.as_u16(), 200, "GET /readyz");
    ensure_eq!(
        answer.json().map_err(|e| e.to_string())?,
        serde_json::json!({"status": "ready"}),
        "body"
    );
    let head = request(cx, Method::HEAD, "/readyz", &[], "").await?;
    ensure_eq!(head.status.as_u16(), 200, "HEAD /readyz");
    // Checks in a row are answered from the cached probe, still ready.
    for _ in 0..5 {
        ensure_eq!(
            doing("GET /readyz", cx.client.readyz().await)?,
            Readiness::Ready,
            "readiness"
        );
    }
    Ok(())
}

/// The value of one counter-like series in a text exposition, 0 when
/// absent (a series that never moved is not listed).
fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

async fn metrics_count_requests_and_backend_calls(cx: &Ctx<'_>) -> Outcome {
    let answer = request(cx, Method::GET, "/metrics", &[], "").await?;
    ensure_eq!(answer.status.as_u16(), 200, "GET /metrics");
    ensure!(
        answer.header("content-type").is_some_and(|t| t
            .starts_with("application/openmetrics-text")
            || t.starts_with("text/plain")),
        "content type {:?} is not a Prometheus text format",
        answer.header("content-type")
    );
    let puts = r#"state_proxy_requests_total{route="key",method="PUT",status="204"}"#;
    let missing = r#"state_proxy_requests_total{route="key",method="GET",status="404"}"#;
    let backend_puts =
        r#"state_proxy_backend_duration_seconds_count{operation="put",outcome="ok"}"#;
    let received = "state_proxy_received_bytes_total";
    let sent = "state_proxy_sent_bytes_total";
    let before = doing("GET /metrics", cx.client.metrics().await)?;

    let key = cx.key("counted");
    let data = vec![7u8; 1000];
    doing("PUT", cx.client.put(&key, data, Condition::None).await)?;
    doing("GET", cx.client.get(&key).await)?;
    let missing_key = cx.key("never-written");
    ensure!(
        cx.client.get(&missing_key).await.is_err(),
        "GET of a key never written succeeded"
    );

    let after = doing("GET /metrics", cx.client.metrics().await)?;
    for (series, at_least) in [
        (puts, 1),
        (missing, 1),
        (backend_puts, 1),
        (received, 1000),
        (sent, 1000),
    ] {
        let moved = sample(&after, series).saturating_sub(sample(&before, series));
        ensure!(
            moved >= at_least,
            "{series} moved by {moved}, expected at least {at_least}"
        );
    }
    ensure!(
        sample(
            &after,
            r#"state_proxy_request_duration_seconds_count{route="key",method="PUT"}"#
        ) >= 1,
        "no request latency recorded for PUT"
    );
    ensure!(
        after.trim_end().ends_with("# EOF"),
        "the exposition does not end with # EOF"
    );
    ensure!(
        !after.contains(&key),
        "a key appears in the metrics (labels must be bounded)"
    );
    Ok(())
}

/// `backend;dur=X, proxy;dur=Y` with two non-negative numbers.
fn check_server_timing(what: &str, value: Option<&str>) -> Outcome {
    let value = value.ok_or_else(|| format!("{what}: no Server-Timing header"))?;
    let mut names = Vec::new();
    for metric in value.split(',') {
        let (name, params) = metric
            .trim()
            .split_once(';')
            .ok_or_else(|| format!("{what}: Server-Timing {value:?} has a metric without dur"))?;
        params
            .trim()
            .strip_prefix("dur=")
            .and_then(|d| d.parse::<f64>().ok())
            .filter(|d| (0.0..600_000.0).contains(d))
            .ok_or_else(|| format!("{what}: Server-Timing {value:?}: bad duration of {name}"))?;
        names.push(name.to_owned());
    }
    ensure_eq!(names, ["backend", "proxy"], "{what}: Server-Timing metrics");
    Ok(())
}

async fn server_timing_on_every_answer(cx: &Ctx<'_>) -> Outcome {
    let key = cx.key("timed");
    let path = key_path("keys", &key);
    let put = request(cx, Method::PUT, &path, &[], "x").await?;
    ensure_eq!(put.status.as_u16(), 204, "PUT");
    check_server_timing("PUT", put.header("server-timing"))?;
    for (method, path, status) in [
        (Method::GET, path.clone(), 200),
        (Method::HEAD, path.clone(), 200),
        (Method::GET, key_path("keys", &cx.key("missing")), 404),
        (Method::PATCH, path.clone(), 405),
        (Method::GET, "/no-such-route".to_owned(), 404),
        (Method::GET, "/healthz".to_owned(), 200),
        (Method::GET, "/readyz".to_owned(), 200),
        (Method::GET, format!("/keys/?prefix={}", cx.dir()), 200),
    ] {
        let what = format!("{method} {path}");
        let answer = request(cx, method, &path, &[], "").await?;
        ensure_eq!(answer.status.as_u16(), status, "{what}");
        check_server_timing(&what, answer.header("server-timing"))?;
    }
    let refused = request(cx, Method::PUT, &path, &[("if-none-match", "*")], "again").await?;
    ensure_eq!(
        refused.status.as_u16(),
        412,
        "PUT If-None-Match: * of an existing key"
    );
    check_server_timing("412 answer", refused.header("server-timing"))
}

async fn operational_routes_are_read_only(cx: &Ctx<'_>) -> Outcome {
    for path in ["/capabilities", "/readyz", "/metrics"] {
        let answer = request(cx, Method::PUT, path, &[], "x").await?;
        expect_error_body(&format!("PUT {path}"), &answer, 405, "method_not_allowed")?;
        ensure_eq!(
            answer.header("allow"),
            Some("GET, HEAD"),
            "PUT {path}: Allow"
        );
    }
    Ok(())
}

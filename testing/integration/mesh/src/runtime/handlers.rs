//! The built-in test handlers, chosen by `ASYA_HANDLER`. Each takes the
//! payload and returns zero or more result payloads, or raises the way a
//! Python handler would (type, message, MRO), so the runtime's answers
//! look like the original's. A payload a handler will not even try
//! (past a size cap) is [`Raised::Invalid`], which the runtime answers
//! with 400 rather than 500.

use serde_json::{Value, json};

use crate::envelope::ErrorInfo;

/// What a handler can be.
#[derive(Clone, Copy, Debug)]
pub enum Handler {
    /// A function of the payload (payload mode).
    Payload(PayloadHandler),
    /// The crew handlers x-sink and x-sump: they receive the whole
    /// envelope and checkpoint it (envelope mode, streamed answer).
    Checkpoint,
}

pub type PayloadHandler = fn(&Value) -> Result<Vec<Value>, Raised>;

/// How a handler gave up.
#[derive(Debug)]
pub enum Raised {
    /// The handler raised (500 `processing_error`).
    Error(ErrorInfo),
    /// The payload is refused before any work (400, with the details).
    Invalid(ErrorInfo),
}

impl From<ErrorInfo> for Raised {
    fn from(error: ErrorInfo) -> Raised {
        Raised::Error(error)
    }
}

impl Raised {
    pub fn info(&self) -> &ErrorInfo {
        match self {
            Raised::Error(info) | Raised::Invalid(info) => info,
        }
    }
}

/// Largest `size_kb` of `large-payload` (64 MiB): the data is made in
/// memory and travels in one envelope.
pub const MAX_LARGE_PAYLOAD_KB: u64 = 64 * 1024;

/// Handler names, for messages.
pub const NAMES: &[&str] = &[
    "echo",
    "doubler",
    "incrementer",
    "error",
    "large-payload",
    "x-sink",
    "x-sump",
];

impl Handler {
    pub fn by_name(name: &str) -> Option<Handler> {
        Some(match name {
            "echo" => Handler::Payload(echo),
            "doubler" => Handler::Payload(doubler),
            "incrementer" => Handler::Payload(incrementer),
            "error" => Handler::Payload(error),
            "large-payload" => Handler::Payload(large_payload),
            "x-sink" | "x-sump" => Handler::Checkpoint,
            _ => return None,
        })
    }
}

/// Longest `sleep_ms` a payload may ask for.
pub const MAX_SLEEP_MS: u64 = 60_000;

/// How long a payload handler takes before it runs: `"sleep_ms": n` in the
/// payload (0 to [`MAX_SLEEP_MS`]), a slow handler on demand, so that a
/// test can have tasks in work when it disrupts the mesh. Anything else
/// under that name is refused before any work.
pub fn pause(payload: &Value) -> Result<Option<std::time::Duration>, Raised> {
    let Some(ms) = payload.get("sleep_ms") else {
        return Ok(None);
    };
    let ms = ms
        .as_u64()
        .filter(|ms| *ms <= MAX_SLEEP_MS)
        .ok_or_else(|| {
            Raised::Invalid(ErrorInfo::new(
                "ValidationError",
                format!("sleep_ms must be an integer from 0 to {MAX_SLEEP_MS}"),
            ))
        })?;
    Ok(Some(std::time::Duration::from_millis(ms)))
}

/// What `incrementer` adds (10 doubled, then incremented, is 25).
pub const INCREMENT: i64 = 5;

/// `{"message": m}` → `{"echoed": m}`. With `"repeat": n` it returns the
/// result n times (n = 0: nothing at all), which is how the pipeline's
/// fan-out and empty answers are exercised.
fn echo(payload: &Value) -> Result<Vec<Value>, Raised> {
    let message = field(payload, "message")?;
    let repeat = match payload.get("repeat") {
        None => 1,
        Some(n) => n
            .as_u64()
            .filter(|n| *n <= 100)
            .ok_or_else(|| value_error("repeat must be an integer from 0 to 100"))?,
    };
    let result = json!({"echoed": message});
    Ok((0..repeat).map(|_| result.clone()).collect())
}

/// `value` doubled; other fields kept.
fn doubler(payload: &Value) -> Result<Vec<Value>, Raised> {
    with_value(payload, |v| v.checked_mul(2), |v| v * 2.0)
}

/// `value` plus [`INCREMENT`]; other fields kept.
fn incrementer(payload: &Value) -> Result<Vec<Value>, Raised> {
    with_value(
        payload,
        |v| v.checked_add(INCREMENT),
        |v| v + INCREMENT as f64,
    )
}

/// Raises `ValueError("Intentional test failure")` when `should_fail` is
/// true; otherwise returns the payload.
fn error(payload: &Value) -> Result<Vec<Value>, Raised> {
    if payload.get("should_fail").and_then(Value::as_bool) == Some(true) {
        return Err(value_error("Intentional test failure").into());
    }
    Ok(vec![payload.clone()])
}

/// `{"size_kb": n, "data": d}` → the same back, with `bytes` = the
/// length of `data`. `data` must be exactly n KiB; without it, n KiB of a
/// fixed pattern are made here.
fn large_payload(payload: &Value) -> Result<Vec<Value>, Raised> {
    let size_kb = field(payload, "size_kb")?
        .as_u64()
        .ok_or_else(|| value_error("size_kb must be a non-negative integer"))?;
    if size_kb > MAX_LARGE_PAYLOAD_KB {
        let mut invalid = ErrorInfo::new(
            "ValidationError",
            format!("size_kb {size_kb} is over the limit of {MAX_LARGE_PAYLOAD_KB}"),
        );
        invalid
            .extra
            .insert("max_size_kb".into(), json!(MAX_LARGE_PAYLOAD_KB));
        return Err(Raised::Invalid(invalid));
    }
    let wanted = usize::try_from(size_kb * 1024).map_err(|_| value_error("size_kb too large"))?;
    let data = match payload.get("data") {
        Some(Value::String(data)) => {
            if data.len() != wanted {
                return Err(value_error(format!(
                    "data has {} bytes, size_kb says {wanted}",
                    data.len()
                ))
                .into());
            }
            data.clone()
        }
        Some(_) => return Err(type_error("data must be a string").into()),
        None => "0123456789abcdef".repeat(wanted / 16) + &"x".repeat(wanted % 16),
    };
    Ok(vec![
        json!({"size_kb": size_kb, "bytes": data.len(), "data": data}),
    ])
}

fn field<'a>(payload: &'a Value, name: &str) -> Result<&'a Value, ErrorInfo> {
    match payload {
        Value::Object(map) => map.get(name).ok_or_else(|| key_error(name)),
        _ => Err(type_error("the payload must be an object")),
    }
}

/// Applies an integer or a float operation to `value`.
fn with_value(
    payload: &Value,
    int: impl Fn(i64) -> Option<i64>,
    float: impl Fn(f64) -> f64,
) -> Result<Vec<Value>, Raised> {
    let value = field(payload, "value")?;
    let result = if let Some(v) = value.as_i64() {
        json!(int(v).ok_or_else(|| value_error("value out of range"))?)
    } else if let Some(v) = value.as_f64() {
        json!(float(v))
    } else {
        return Err(type_error("value must be a number").into());
    };
    let mut out = payload.clone();
    out["value"] = result;
    Ok(vec![out])
}

fn python_error(kind: &str, bases: &[&str], message: String) -> ErrorInfo {
    let mut mro = vec![kind.to_owned()];
    mro.extend(bases.iter().map(|b| (*b).to_owned()));
    mro.extend(["Exception", "BaseException", "object"].map(str::to_owned));
    ErrorInfo {
        traceback: Some(format!("{kind}: {message}")),
        mro: Some(mro),
        ..ErrorInfo::new(kind, message)
    }
}

pub fn value_error(message: impl Into<String>) -> ErrorInfo {
    python_error("ValueError", &[], message.into())
}

pub fn type_error(message: impl Into<String>) -> ErrorInfo {
    python_error("TypeError", &[], message.into())
}

pub fn key_error(key: &str) -> ErrorInfo {
    python_error("KeyError", &["LookupError"], format!("'{key}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler's results, or what it raised (not a refusal).
    fn run(name: &str, payload: Value) -> Result<Vec<Value>, ErrorInfo> {
        match Handler::by_name(name).unwrap() {
            Handler::Payload(f) => f(&payload).map_err(|raised| match raised {
                Raised::Error(info) => info,
                Raised::Invalid(info) => panic!("{name} refused the payload: {info:?}"),
            }),
            Handler::Checkpoint => panic!("{name} is not a payload handler"),
        }
    }

    #[test]
    fn a_payload_may_ask_for_a_pause_within_bounds() {
        use std::time::Duration;
        assert!(matches!(pause(&json!({"message": 1})), Ok(None)));
        assert_eq!(
            pause(&json!({"sleep_ms": 250})).unwrap(),
            Some(Duration::from_millis(250))
        );
        for bad in [json!(-1), json!(60_001), json!("1"), json!(1.5)] {
            assert!(
                matches!(pause(&json!({"sleep_ms": bad})), Err(Raised::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_name_is_a_handler() {
        for name in NAMES {
            assert!(Handler::by_name(name).is_some(), "{name}");
        }
        assert!(matches!(
            Handler::by_name("x-sump"),
            Some(Handler::Checkpoint)
        ));
        assert!(Handler::by_name("nope").is_none());
    }

    #[test]
    fn echo_echoes_and_repeats() {
        assert_eq!(
            run("echo", json!({"message": "hi"})).unwrap(),
            [json!({"echoed": "hi"})]
        );
        assert_eq!(
            run("echo", json!({"message": 1, "repeat": 3}))
                .unwrap()
                .len(),
            3
        );
        assert!(
            run("echo", json!({"message": 1, "repeat": 0}))
                .unwrap()
                .is_empty()
        );
        let missing = run("echo", json!({})).unwrap_err();
        assert_eq!(missing.kind.as_deref(), Some("KeyError"));
    }

    #[test]
    fn the_pipeline_makes_25_of_10() {
        let doubled = run("doubler", json!({"value": 10, "keep": true})).unwrap();
        assert_eq!(doubled, [json!({"value": 20, "keep": true})]);
        let incremented = run("incrementer", doubled[0].clone()).unwrap();
        assert_eq!(incremented[0]["value"], 25);
        assert_eq!(
            run("doubler", json!({"value": 1.5})).unwrap()[0]["value"],
            3.0
        );
        let wrong = run("doubler", json!({"value": "ten"})).unwrap_err();
        assert_eq!(wrong.kind.as_deref(), Some("TypeError"));
    }

    #[test]
    fn error_raises_a_value_error_with_its_mro() {
        let raised = run("error", json!({"should_fail": true})).unwrap_err();
        assert_eq!(raised.message, "Intentional test failure");
        assert_eq!(raised.kind.as_deref(), Some("ValueError"));
        assert_eq!(
            raised.mro.unwrap(),
            ["ValueError", "Exception", "BaseException", "object"]
        );
        assert_eq!(
            run("error", json!({"should_fail": false})).unwrap(),
            [json!({"should_fail": false})]
        );
    }

    #[test]
    fn large_payload_checks_and_echoes_its_data() {
        let data = "ab".repeat(1024);
        let out = run("large-payload", json!({"size_kb": 2, "data": data})).unwrap();
        assert_eq!(out[0]["data"], data);
        assert_eq!(out[0]["bytes"], 2048);
        let made = run("large-payload", json!({"size_kb": 1})).unwrap();
        assert_eq!(made[0]["data"].as_str().unwrap().len(), 1024);
        assert!(run("large-payload", json!({"size_kb": 3, "data": data})).is_err());
    }

    #[test]
    fn large_payload_refuses_sizes_past_its_cap_before_any_work() {
        let Handler::Payload(large) = Handler::by_name("large-payload").unwrap() else {
            panic!("a payload handler");
        };
        let huge = json!({"size_kb": u64::MAX / 1024});
        let Err(Raised::Invalid(details)) = large(&huge) else {
            panic!("past the cap: refused");
        };
        assert_eq!(details.kind.as_deref(), Some("ValidationError"));
        assert!(
            details.message.contains("over the limit"),
            "{}",
            details.message
        );
        assert_eq!(details.extra["max_size_kb"], MAX_LARGE_PAYLOAD_KB);
        assert!(matches!(
            large(&json!({"size_kb": MAX_LARGE_PAYLOAD_KB + 1})),
            Err(Raised::Invalid(_))
        ));
    }
}

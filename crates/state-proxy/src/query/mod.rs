//! `POST /query`: find JSON documents under a prefix by filter, sort and
//! page, on every store, in process.
//!
//! - `mod.rs`: the request (parsing and validation) and the answer;
//! - `field`: dotted field paths;
//! - `order`: typed comparison of JSON values;
//! - `filter`, `sort`: the engine, pure functions of documents;
//! - `run`: the scan through the [`Store`](crate::store::Store) trait,
//!   list then get with a bounded number of reads in flight, within the
//!   configured limits.

mod field;
mod filter;
mod order;
mod run;
mod sort;

use serde::Serialize;
use serde_json::Value;

pub use filter::Filter;
pub use run::run;
pub use sort::Sort;

use crate::error::{Error, Result};
use crate::key::validate_list_prefix;

/// Bounds of one query (defaults as in docs/query.md, "Limits").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Keys of the listing considered; later keys (byte order) are not.
    pub max_keys: usize,
    /// Objects read.
    pub max_fetch_keys: usize,
    /// Bytes of objects read, in total.
    pub max_fetch_bytes: u64,
    /// Largest `limit`; also what `limit` 0 means.
    pub max_result_rows: usize,
    /// Objects read at the same time.
    pub fetch_concurrency: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits {
            max_keys: 10_000,
            max_fetch_keys: 1_000,
            max_fetch_bytes: 256 << 20,
            max_result_rows: 10_000,
            fetch_concurrency: 32,
        }
    }
}

/// A validated request.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Recursive key prefix, a raw string match.
    pub prefix: String,
    pub filter: Filter,
    pub sort: Sort,
    /// Rows to answer at most (already resolved: never 0).
    pub limit: usize,
    pub offset: usize,
    /// Whether the answer carries the key of each row.
    pub keys: bool,
}

const FIELDS: &str = "prefix, filter, sort, limit, offset, keys";

impl Query {
    /// Parses and validates a request body; every problem is a
    /// `BadRequest` naming it.
    pub fn parse(body: &[u8], limits: &QueryLimits) -> Result<Query> {
        let request: Value = serde_json::from_slice(body)
            .map_err(|e| Error::bad_request(format!("query body is not valid JSON: {e}")))?;
        let Value::Object(fields) = request else {
            return Err(Error::bad_request(format!(
                "query body must be a JSON object with the fields {FIELDS}, got {}",
                filter::kind(&request)
            )));
        };
        let mut query = Query {
            limit: limits.max_result_rows,
            ..Query::default()
        };
        for (name, value) in &fields {
            // An explicit null means the same as leaving the field out.
            if value.is_null() {
                continue;
            }
            match name.as_str() {
                "prefix" => {
                    let Value::String(prefix) = value else {
                        return Err(Error::bad_request(format!(
                            "prefix must be a string, got {}",
                            filter::kind(value)
                        )));
                    };
                    validate_list_prefix(prefix)?;
                    query.prefix = prefix.clone();
                }
                "filter" => query.filter = Filter::parse(value).map_err(Error::bad_request)?,
                "sort" => query.sort = Sort::parse(value).map_err(Error::bad_request)?,
                "limit" => {
                    let limit = non_negative_integer("limit", value)?;
                    if limit > limits.max_result_rows as u64 {
                        return Err(Error::bad_request(format!(
                            "limit {limit} is above the maximum of {} rows (QUERY_MAX_RESULT_ROWS)",
                            limits.max_result_rows
                        )));
                    }
                    if limit > 0 {
                        query.limit = limit as usize;
                    }
                }
                "offset" => {
                    let offset = non_negative_integer("offset", value)?;
                    query.offset = usize::try_from(offset).unwrap_or(usize::MAX);
                }
                "keys" => {
                    let Value::Bool(keys) = value else {
                        return Err(Error::bad_request(format!(
                            "keys must be true or false, got {}",
                            filter::kind(value)
                        )));
                    };
                    query.keys = *keys;
                }
                other => {
                    return Err(Error::bad_request(format!(
                        "unknown query field {other:?}; known fields: {FIELDS}"
                    )));
                }
            }
        }
        Ok(query)
    }
}

fn non_negative_integer(name: &str, value: &Value) -> Result<u64> {
    value.as_u64().ok_or_else(|| {
        let got = match value {
            Value::Number(n) => format!("{n}"),
            other => filter::kind(other).to_owned(),
        };
        Error::bad_request(format!("{name} must be a non-negative integer, got {got}"))
    })
}

/// A matching document and its key.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: String,
    pub document: Value,
}

/// The answer: `rows` and `total` (compat), `keys` when asked for,
/// `truncated` and `skipped` (ours).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    pub rows: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keys: Option<Vec<String>>,
    /// Matches before `limit`/`offset`, among the documents scanned.
    pub total: usize,
    /// A limit cut the scan short: `total` counts only what was scanned.
    pub truncated: bool,
    /// Objects scanned that are not JSON documents.
    pub skipped: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use serde_json::json;

    fn parse(body: &str) -> Result<Query> {
        Query::parse(body.as_bytes(), &QueryLimits::default())
    }

    fn message(body: &str) -> String {
        match parse(body) {
            Err(e) if e.kind() == ErrorKind::BadRequest => e.to_string(),
            other => panic!("{body}: expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn every_field_is_optional() {
        let query = parse("{}").unwrap();
        assert_eq!(query.prefix, "");
        assert_eq!(query.limit, 10_000);
        assert_eq!(query.offset, 0);
        assert!(!query.keys);
        assert!(query.filter.matches(&json!({"anything": 1})));
        let nulls = parse(r#"{"prefix":null,"filter":null,"sort":null,"limit":null}"#).unwrap();
        assert_eq!(nulls.limit, 10_000);
    }

    #[test]
    fn fields_are_read() {
        let query = parse(
            r#"{"prefix":"results/","filter":{"status":"failed"},"sort":["-t"],"limit":20,"offset":40,"keys":true}"#,
        )
        .unwrap();
        assert_eq!(query.prefix, "results/");
        assert_eq!((query.limit, query.offset, query.keys), (20, 40, true));
        assert!(query.filter.matches(&json!({"status": "failed"})));
        assert!(!query.filter.matches(&json!({"status": "done"})));
    }

    #[test]
    fn limit_zero_means_the_maximum_and_the_maximum_is_allowed() {
        assert_eq!(parse(r#"{"limit":0}"#).unwrap().limit, 10_000);
        assert_eq!(parse(r#"{"limit":10000}"#).unwrap().limit, 10_000);
    }

    #[test]
    fn invalid_requests_name_the_problem() {
        for (body, expected) in [
            ("", "not valid JSON"),
            ("[1]", "must be a JSON object"),
            ("\"x\"", "must be a JSON object"),
            (r#"{"filter":[]}"#, "filter must be a JSON object"),
            (r#"{"filter":{"a":{"$like":1}}}"#, "unknown operator"),
            (r#"{"sort":"-a"}"#, "sort must be an array"),
            (r#"{"sort":["a..b"]}"#, "empty segment"),
            (
                r#"{"limit":-1}"#,
                "limit must be a non-negative integer, got -1",
            ),
            (
                r#"{"limit":1.5}"#,
                "limit must be a non-negative integer, got 1.5",
            ),
            (r#"{"limit":"5"}"#, "got a string"),
            (r#"{"offset":-3}"#, "offset must be a non-negative integer"),
            (r#"{"limit":10001}"#, "above the maximum of 10000"),
            (r#"{"prefix":5}"#, "prefix must be a string"),
            (r#"{"keys":"yes"}"#, "keys must be true or false"),
            (r#"{"fields":["a"]}"#, "unknown query field \"fields\""),
        ] {
            let text = message(body);
            assert!(text.contains(expected), "{body}: {text}");
        }
    }

    #[test]
    fn the_answer_shape() {
        let answer = Answer {
            rows: vec![json!({"a": 1})],
            keys: None,
            total: 3,
            truncated: false,
            skipped: 1,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"rows": [{"a": 1}], "total": 3, "truncated": false, "skipped": 1})
        );
        let with_keys = Answer {
            keys: Some(vec!["k".into()]),
            ..answer
        };
        assert_eq!(
            serde_json::to_value(&with_keys).unwrap()["keys"],
            json!(["k"])
        );
    }
}

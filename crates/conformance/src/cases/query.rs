//! `POST /query`: typed filters and operators on dotted paths, typed and
//! stable sorting, paging, keys, non-JSON documents, limits and
//! validation, over documents written through the proxy.
//!
//! Expected answers are computed here from how the documents were
//! generated, not by a second query engine: each check names the
//! documents it expects by their number.

use std::cmp::Ordering;

use futures_util::{StreamExt, TryStreamExt, stream};
use http::Method;
use serde_json::{Value, json};
use state_client::{Client, Condition};

use super::{
    Case, Outcome, case, doing, ensure, ensure_eq, expect_error, expect_error_body, request,
};
use crate::raw::RawConnection;
use crate::{Ctx, LIMITED_MAX_FETCH_BYTES, LIMITED_MAX_KEYS, LIMITED_MAX_RESULT_ROWS};

pub(super) fn cases() -> Vec<Case> {
    vec![
        case!(query_filters_sorts_and_pages_a_few_hundred_documents),
        case!(query_comparisons_are_typed),
        case!(query_prefix_is_a_raw_recursive_match),
        case!(query_keys_only_when_asked),
        case!(query_skips_documents_that_are_not_json),
        case!(query_validation_names_the_problem),
        case!(query_answers_keep_the_connection_usable),
        case!(query_truncates_at_the_key_limit),
        case!(query_truncates_at_the_byte_limit),
        case!(query_rows_are_capped_by_the_maximum),
        case!(
            query_does_not_refresh_remembered_versions,
            |t| t.profile.cas(),
            1
        ),
    ]
}

/// Writes in flight at once: enough to keep a slow emulator busy, few
/// enough not to swamp it.
const PARALLEL_WRITES: usize = 16;

/// Writes every (key, body) pair, a bounded number at a time.
async fn put_all(client: &Client, objects: Vec<(String, Vec<u8>)>) -> Outcome {
    stream::iter(objects)
        .map(|(key, body)| async move {
            client
                .put(&key, body, Condition::None)
                .await
                .map(drop)
                .map_err(|e| format!("PUT {key}: {e}"))
        })
        .buffer_unordered(PARALLEL_WRITES)
        .try_collect()
        .await
}

/// Runs a query that must succeed.
async fn query(client: &Client, request: Value) -> Result<Value, String> {
    doing(&format!("query {request}"), client.query(&request).await)
}

/// The `keys` of an answer (asked for with `"keys": true`).
fn answer_keys(answer: &Value) -> Result<Vec<String>, String> {
    answer["keys"]
        .as_array()
        .ok_or_else(|| format!("answer without keys: {answer}"))?
        .iter()
        .map(|key| {
            key.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a key that is not a string in {answer}"))
        })
        .collect()
}

fn total(answer: &Value) -> Option<u64> {
    answer["total"].as_u64()
}

fn truncated(answer: &Value) -> Option<bool> {
    answer["truncated"].as_bool()
}

/// The client for the proxy with small query limits, or why there is none.
fn limited(cx: &Ctx<'_>) -> Result<Client, String> {
    cx.target.limited.as_ref().map(Client::new).ok_or_else(|| {
        "needs a proxy on the same backend started with the limited query environment \
         (conformance::limited_env); pass it with --limited-socket"
            .to_owned()
    })
}

// --- A few hundred task documents -------------------------------------

const TASKS: usize = 300;
const STATUSES: [&str; 4] = ["done", "failed", "running", "queued"];
const TEAMS: [&str; 3] = ["red", "green", "blue"];

fn status(i: usize) -> &'static str {
    STATUSES[(i * 7) % 4]
}
fn attempts(i: usize) -> usize {
    (i * 5) % 9
}
/// Quarters, so that every value is exact in binary.
fn score(i: usize) -> f64 {
    ((i * 37) % 101) as f64 / 4.0
}
fn team(i: usize) -> &'static str {
    TEAMS[i % 3]
}
fn level(i: usize) -> usize {
    i % 5
}
fn updated_at(i: usize) -> String {
    format!(
        "2026-11-{:02}T{:02}:{:02}:00Z",
        1 + i % 28,
        (i * 13) % 24,
        (i * 7) % 60
    )
}
/// Only every tenth task has a note.
fn note(i: usize) -> Option<String> {
    i.is_multiple_of(10).then(|| format!("n{:03}", TASKS - i))
}

fn task(i: usize) -> Value {
    let mut document = json!({
        "i": i,
        "status": status(i),
        "attempts": attempts(i),
        "score": score(i),
        "owner": {"team": team(i), "level": level(i)},
        "updated_at": updated_at(i),
        "ok": i.is_multiple_of(2),
    });
    if let Some(note) = note(i) {
        document["note"] = json!(note);
    }
    document
}

async fn query_filters_sorts_and_pages_a_few_hundred_documents(cx: &Ctx<'_>) -> Outcome {
    let key = |i: usize| cx.key(&format!("tasks/{i:03}"));
    put_all(
        &cx.client,
        (0..TASKS)
            .map(|i| (key(i), task(i).to_string().into_bytes()))
            .collect(),
    )
    .await?;
    let prefix = cx.key("tasks/");
    let keys_of = |numbers: Vec<usize>| numbers.into_iter().map(key).collect::<Vec<_>>();
    let matching =
        |test: &dyn Fn(usize) -> bool| keys_of((0..TASKS).filter(|&i| test(i)).collect());

    // Filters: key order without a sort, total counting every match.
    let filters: Vec<(Value, Vec<String>)> = vec![
        (json!({}), matching(&|_| true)),
        (
            json!({"status": "failed"}),
            matching(&|i| status(i) == "failed"),
        ),
        (
            json!({"attempts": {"$gte": 3, "$lt": 5}}),
            matching(&|i| (3..5).contains(&attempts(i))),
        ),
        (
            json!({"owner.team": "blue"}),
            matching(&|i| team(i) == "blue"),
        ),
        (
            json!({"owner.level": {"$in": [1, 3]}, "ok": true}),
            matching(&|i| [1, 3].contains(&level(i)) && i.is_multiple_of(2)),
        ),
        (
            json!({"status": {"$nin": ["done", "queued"]}}),
            matching(&|i| !["done", "queued"].contains(&status(i))),
        ),
        (
            json!({"status": {"$ne": "running"}, "score": {"$gt": 12.5}}),
            matching(&|i| status(i) != "running" && score(i) > 12.5),
        ),
        (
            json!({"note": {"$exists": true}}),
            matching(&|i| note(i).is_some()),
        ),
        (
            json!({"note": {"$exists": false}}),
            matching(&|i| note(i).is_none()),
        ),
        (
            json!({"updated_at": {"$lte": "2026-11-05T00:00:00Z"}}),
            matching(&|i| updated_at(i).as_str() <= "2026-11-05T00:00:00Z"),
        ),
        (
            json!({"owner": {"team": "red", "level": 0}}),
            matching(&|i| i.is_multiple_of(15)),
        ),
        // Typed: a number never equals its text, a boolean never its name.
        (json!({"attempts": "3"}), vec![]),
        (json!({"ok": "true"}), vec![]),
        (json!({"score": {"$gt": "1"}}), vec![]),
    ];
    for (filter, expected) in filters {
        let answer = query(
            &cx.client,
            json!({"prefix": prefix, "filter": filter, "keys": true}),
        )
        .await?;
        ensure_eq!(answer_keys(&answer)?, expected, "keys matching {filter}");
        ensure_eq!(
            total(&answer),
            Some(expected.len() as u64),
            "total of {filter}"
        );
        ensure_eq!(truncated(&answer), Some(false), "truncated for {filter}");
        let rows = answer["rows"].as_array().cloned().unwrap_or_default();
        let first = expected
            .first()
            .and_then(|k| k.rsplit('/').next())
            .and_then(|n| n.parse::<usize>().ok());
        ensure_eq!(
            rows.first().cloned(),
            first.map(task),
            "first row of {filter}"
        );
    }

    // Sorts, read page by page: the pages put together are the whole
    // order, without overlap or gap.
    let by = |order: &dyn Fn(usize, usize) -> Ordering| {
        let mut numbers: Vec<usize> = (0..TASKS).collect();
        numbers.sort_by(|&a, &b| order(a, b).then(a.cmp(&b)));
        keys_of(numbers)
    };
    let sorts: Vec<(Value, Vec<String>)> = vec![
        (
            json!(["-score"]),
            by(&|a, b| score(b).partial_cmp(&score(a)).unwrap_or(Ordering::Equal)),
        ),
        (
            json!(["owner.team", "-updated_at"]),
            by(&|a, b| team(a).cmp(team(b)).then(updated_at(b).cmp(&updated_at(a)))),
        ),
        (
            json!(["attempts"]),
            by(&|a, b| attempts(a).cmp(&attempts(b))),
        ),
        // Missing fields last, whatever the direction.
        (
            json!(["-note"]),
            by(&|a, b| match (note(a), note(b)) {
                (Some(x), Some(y)) => y.cmp(&x),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            }),
        ),
    ];
    const PAGE: usize = 40;
    for (sort, expected) in sorts {
        let mut seen = Vec::new();
        for offset in (0..TASKS + PAGE).step_by(PAGE) {
            let answer = query(
                &cx.client,
                json!({"prefix": prefix, "sort": sort, "limit": PAGE, "offset": offset, "keys": true}),
            )
            .await?;
            ensure_eq!(
                total(&answer),
                Some(TASKS as u64),
                "total sorting by {sort}"
            );
            let page = answer_keys(&answer)?;
            ensure!(
                page.len() == PAGE.min(TASKS.saturating_sub(offset)),
                "sorting by {sort}: page at offset {offset} has {} rows",
                page.len()
            );
            seen.extend(page);
        }
        ensure_eq!(seen, expected, "pages sorted by {sort}");
    }
    Ok(())
}

async fn query_comparisons_are_typed(cx: &Ctx<'_>) -> Outcome {
    // One field, every JSON type, and one document without it.
    let values = [
        ("a", json!(10)),
        ("b", json!("10")),
        ("c", json!(2)),
        ("d", json!("2")),
        ("e", json!(true)),
        ("f", json!("true")),
        ("g", json!(null)),
        ("h", json!(2.5)),
        ("i", json!([1, 2])),
        ("j", json!({"x": 1})),
        ("k", json!(-1)),
        ("l", json!(false)),
    ];
    let mut objects: Vec<(String, Vec<u8>)> = values
        .iter()
        .map(|(name, value)| (cx.key(name), json!({"v": value}).to_string().into_bytes()))
        .collect();
    objects.push((cx.key("m"), json!({"other": 1}).to_string().into_bytes()));
    put_all(&cx.client, objects).await?;
    let names = |answer: &Value| -> Result<Vec<String>, String> {
        Ok(answer_keys(answer)?
            .into_iter()
            .map(|k| k.rsplit('/').next().unwrap_or_default().to_owned())
            .collect())
    };
    for (filter, expected) in [
        (json!({"v": 10}), vec!["a"]),
        (json!({"v": 10.0}), vec!["a"]),
        (json!({"v": "10"}), vec!["b"]),
        (json!({"v": true}), vec!["e"]),
        (json!({"v": null}), vec!["g"]),
        (json!({"v": [1, 2]}), vec!["i"]),
        (json!({"v.x": 1}), vec!["j"]),
        (json!({"v.1": 2}), vec!["i"]),
        (json!({"v": {"$gt": 2}}), vec!["a", "h"]),
        (json!({"v": {"$gte": 2, "$lt": 10}}), vec!["c", "h"]),
        (json!({"v": {"$gt": "10"}}), vec!["d", "f"]),
        (json!({"v": {"$lt": true}}), vec!["l"]),
        (json!({"v": {"$in": [2, "10", false]}}), vec!["b", "c", "l"]),
        (
            json!({"v": {"$ne": 10}}),
            vec!["b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m"],
        ),
        (json!({"v": {"$exists": false}}), vec!["m"]),
    ] {
        let answer = query(
            &cx.client,
            json!({"prefix": cx.dir(), "filter": filter, "keys": true}),
        )
        .await?;
        ensure_eq!(names(&answer)?, expected, "documents matching {filter}");
    }
    // Sorted by type (null, booleans, numbers, strings, arrays, objects),
    // typed within each, the document without the field last.
    let ascending = query(
        &cx.client,
        json!({"prefix": cx.dir(), "sort": ["v"], "keys": true}),
    )
    .await?;
    ensure_eq!(
        names(&ascending)?,
        [
            "g", "l", "e", "k", "c", "h", "a", "b", "d", "f", "i", "j", "m"
        ],
        "ascending typed order"
    );
    let descending = query(
        &cx.client,
        json!({"prefix": cx.dir(), "sort": ["-v"], "keys": true}),
    )
    .await?;
    ensure_eq!(
        names(&descending)?,
        [
            "j", "i", "f", "d", "b", "a", "h", "c", "k", "e", "l", "g", "m"
        ],
        "descending typed order"
    );
    Ok(())
}

async fn query_prefix_is_a_raw_recursive_match(cx: &Ctx<'_>) -> Outcome {
    let names = ["a/x", "a/y/z", "ab", "b"];
    put_all(
        &cx.client,
        names
            .iter()
            .map(|name| (cx.key(name), br#"{"n":1}"#.to_vec()))
            .collect(),
    )
    .await?;
    for (prefix, expected) in [
        ("a", vec!["a/x", "a/y/z", "ab"]),
        ("a/", vec!["a/x", "a/y/z"]),
        ("", vec!["a/x", "a/y/z", "ab", "b"]),
        ("c", vec![]),
    ] {
        let answer = query(&cx.client, json!({"prefix": cx.key(prefix), "keys": true})).await?;
        let expected: Vec<String> = expected.iter().map(|name| cx.key(name)).collect();
        ensure_eq!(
            answer_keys(&answer)?,
            expected,
            "keys under prefix {prefix:?}"
        );
    }
    Ok(())
}

async fn query_keys_only_when_asked(cx: &Ctx<'_>) -> Outcome {
    put_all(
        &cx.client,
        vec![
            (cx.key("one"), br#"{"n":1}"#.to_vec()),
            (cx.key("two"), br#"{"n":2}"#.to_vec()),
        ],
    )
    .await?;
    let plain = query(&cx.client, json!({"prefix": cx.dir(), "sort": ["-n"]})).await?;
    ensure!(plain.get("keys").is_none(), "keys without asking: {plain}");
    ensure_eq!(plain["rows"], json!([{"n": 2}, {"n": 1}]), "rows");
    ensure_eq!(total(&plain), Some(2), "total");
    let with_keys = query(
        &cx.client,
        json!({"prefix": cx.dir(), "sort": ["-n"], "keys": true}),
    )
    .await?;
    ensure_eq!(with_keys["rows"], plain["rows"], "rows with keys");
    ensure_eq!(
        answer_keys(&with_keys)?,
        [cx.key("two"), cx.key("one")],
        "keys, in row order"
    );
    Ok(())
}

async fn query_skips_documents_that_are_not_json(cx: &Ctx<'_>) -> Outcome {
    put_all(
        &cx.client,
        vec![
            (cx.key("a"), br#"{"kind":"doc"}"#.to_vec()),
            (cx.key("b"), b"plain text".to_vec()),
            (cx.key("c"), vec![0xff, 0x00, 0x9c, 0x7b]),
            (cx.key("d"), br#"{"kind":"doc""#.to_vec()),
            (cx.key("e"), b"[1,2,3]".to_vec()),
            (cx.key("f"), br#"{"kind":"doc"}"#.to_vec()),
        ],
    )
    .await?;
    let all = query(&cx.client, json!({"prefix": cx.dir(), "keys": true})).await?;
    ensure_eq!(all["skipped"].as_u64(), Some(3), "skipped: {all}");
    ensure_eq!(
        answer_keys(&all)?,
        [cx.key("a"), cx.key("e"), cx.key("f")],
        "the JSON documents, scalars and arrays included"
    );
    let filtered = query(
        &cx.client,
        json!({"prefix": cx.dir(), "filter": {"kind": "doc"}}),
    )
    .await?;
    ensure_eq!(total(&filtered), Some(2), "documents of kind doc");
    ensure_eq!(
        filtered["skipped"].as_u64(),
        Some(3),
        "skipped with a filter"
    );
    Ok(())
}

async fn query_validation_names_the_problem(cx: &Ctx<'_>) -> Outcome {
    let cases: [(&str, &str); 14] = [
        ("[]", "must be a JSON object"),
        ("not json", "not valid JSON"),
        (r#"{"filter": ["status"]}"#, "filter must be a JSON object"),
        (r#"{"filter": {"a..b": 1}}"#, "a..b"),
        (r#"{"filter": {"$or": []}}"#, "$or"),
        (r#"{"filter": {"n": {"$regex": "x"}}}"#, "$regex"),
        (r#"{"filter": {"n": {"$in": 3}}}"#, "$in"),
        (r#"{"sort": "-n"}"#, "sort must be an array"),
        (r#"{"sort": ["n", 3]}"#, "sort"),
        (r#"{"limit": -1}"#, "limit"),
        (r#"{"offset": 2.5}"#, "offset"),
        (r#"{"limit": "10"}"#, "limit"),
        (r#"{"limit": 18446744073709551615}"#, "maximum"),
        (r#"{"prefix": "x", "colour": "red"}"#, "colour"),
    ];
    for (body, named) in cases {
        let answer = request(cx, Method::POST, "/query", &[], body).await?;
        expect_error_body(&format!("query {body}"), &answer, 400, "bad_request")?;
        let message = answer
            .json()
            .map_err(|e| e.to_string())?
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        ensure!(
            message.contains(named),
            "query {body}: the message {message:?} does not name {named:?}"
        );
    }
    Ok(())
}

async fn query_answers_keep_the_connection_usable(cx: &Ctx<'_>) -> Outcome {
    // Errors and answers come after the body was read: the next request
    // on the same connection is understood.
    doing(
        "PUT",
        cx.client
            .put(&cx.key("d"), r#"{"n":1}"#, Condition::None)
            .await,
    )?;
    let good = json!({"prefix": cx.dir(), "filter": {"n": 1}}).to_string();
    let bad = r#"{"filter": {"n": {"$nope": 1}}}"#;
    let mut connection = RawConnection::open(&cx.target.socket).await?;
    for (body, status) in [(bad, 400), (good.as_str(), 200)] {
        connection
            .send(
                format!(
                    "POST /query HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
        let answer = connection.answer(false).await?;
        ensure_eq!(answer.status, status, "query {body}");
    }
    connection
        .send(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    ensure_eq!(
        connection.answer(false).await?.status,
        200,
        "request after the queries"
    );
    Ok(())
}

async fn query_truncates_at_the_key_limit(cx: &Ctx<'_>) -> Outcome {
    let limited = limited(cx)?;
    let count = LIMITED_MAX_KEYS + 10;
    let key = |i: usize| cx.key(&format!("k{i:03}"));
    put_all(
        &cx.client,
        (0..count)
            .map(|i| (key(i), json!({"i": i}).to_string().into_bytes()))
            .collect(),
    )
    .await?;
    // The limited proxy also answers at most LIMITED_MAX_RESULT_ROWS rows
    // at a time: read what it scanned page by page.
    let mut scanned = Vec::new();
    for offset in (0..LIMITED_MAX_KEYS).step_by(LIMITED_MAX_RESULT_ROWS) {
        let page = query(
            &limited,
            json!({"prefix": cx.dir(), "keys": true, "offset": offset}),
        )
        .await?;
        ensure_eq!(
            truncated(&page),
            Some(true),
            "truncated over {count} keys: {page}"
        );
        ensure_eq!(
            total(&page),
            Some(LIMITED_MAX_KEYS as u64),
            "total of what was scanned"
        );
        scanned.extend(answer_keys(&page)?);
    }
    ensure_eq!(
        scanned,
        (0..LIMITED_MAX_KEYS).map(key).collect::<Vec<_>>(),
        "the scan covers the first keys in byte order"
    );
    let whole = query(&cx.client, json!({"prefix": cx.dir()})).await?;
    ensure_eq!(
        truncated(&whole),
        Some(false),
        "truncated with the default limits"
    );
    ensure_eq!(
        total(&whole),
        Some(count as u64),
        "total with the default limits"
    );
    Ok(())
}

async fn query_truncates_at_the_byte_limit(cx: &Ctx<'_>) -> Outcome {
    let limited = limited(cx)?;
    // Documents of 1000 bytes each: four fit in the budget, the fifth
    // would not.
    let document = |i: usize| {
        let mut text = json!({"i": i, "pad": ""}).to_string();
        let pad = 1000 - text.len();
        text = json!({"i": i, "pad": "x".repeat(pad)}).to_string();
        text.into_bytes()
    };
    let fitting = (LIMITED_MAX_FETCH_BYTES / 1000) as usize;
    let key = |i: usize| cx.key(&format!("big{i:02}"));
    put_all(&cx.client, (0..10).map(|i| (key(i), document(i))).collect()).await?;
    let request = json!({"prefix": cx.dir(), "keys": true});
    let cut = query(&limited, request.clone()).await?;
    ensure_eq!(
        truncated(&cut),
        Some(true),
        "truncated over the byte budget: {cut}"
    );
    ensure_eq!(
        answer_keys(&cut)?,
        (0..fitting).map(key).collect::<Vec<_>>(),
        "the documents that fit, in key order"
    );
    let whole = query(&cx.client, request).await?;
    ensure_eq!(
        truncated(&whole),
        Some(false),
        "truncated with the default limits"
    );
    ensure_eq!(total(&whole), Some(10), "total with the default limits");
    Ok(())
}

async fn query_rows_are_capped_by_the_maximum(cx: &Ctx<'_>) -> Outcome {
    let limited = limited(cx)?;
    let count = LIMITED_MAX_RESULT_ROWS + 5;
    put_all(
        &cx.client,
        (0..count)
            .map(|i| {
                (
                    cx.key(&format!("r{i:02}")),
                    json!({"i": i}).to_string().into_bytes(),
                )
            })
            .collect(),
    )
    .await?;
    let rows = |answer: &Value| answer["rows"].as_array().map_or(0, Vec::len);
    let unlimited = query(&limited, json!({"prefix": cx.dir(), "limit": 0})).await?;
    ensure_eq!(
        rows(&unlimited),
        LIMITED_MAX_RESULT_ROWS,
        "rows with limit 0"
    );
    ensure_eq!(total(&unlimited), Some(count as u64), "total with limit 0");
    ensure_eq!(
        truncated(&unlimited),
        Some(false),
        "a row cap is not a truncated scan"
    );
    let at_max = query(
        &limited,
        json!({"prefix": cx.dir(), "limit": LIMITED_MAX_RESULT_ROWS, "offset": 10}),
    )
    .await?;
    ensure_eq!(rows(&at_max), count - 10, "rows of the last page");
    expect_error(
        "a limit above the maximum",
        limited
            .query(&json!({"prefix": cx.dir(), "limit": LIMITED_MAX_RESULT_ROWS + 1}))
            .await,
        400,
        "bad_request",
    )
}

async fn query_does_not_refresh_remembered_versions(cx: &Ctx<'_>) -> Outcome {
    // A query is not a read the actor builds a write on: after our read,
    // their write and our query, our plain write must still conflict.
    let (ours, theirs) = (&cx.client, &cx.peers[0]);
    let key = cx.key("state");
    doing(
        "create",
        ours.put(&key, r#"{"v":0}"#, Condition::None).await,
    )?;
    doing("our read", ours.get(&key).await)?;
    doing(
        "their write",
        theirs.put(&key, r#"{"v":1}"#, Condition::None).await,
    )?;
    let answer = query(ours, json!({"prefix": cx.dir()})).await?;
    ensure_eq!(
        answer["rows"],
        json!([{"v": 1}]),
        "the query sees their write"
    );
    expect_error(
        "our plain write after the query",
        ours.put(&key, r#"{"v":2}"#, Condition::None).await,
        409,
        "conflict",
    )
}

//! The scan: list the prefix, read the objects with a bounded number in
//! flight, keep the documents the filter matches, sort, page.
//!
//! Objects are read straight from the store, not through the mode layer:
//! a compare-and-swap mode remembers the version of every key it reads,
//! and a query reading a thousand documents would evict the versions the
//! actor really read and make its next plain writes conditional on
//! versions it never looked at. A query is an observation, not a read
//! the actor builds a write on.
//!
//! The scan is deterministic: keys are taken in byte order, reads run
//! concurrently but are consumed in that order (`buffered`, not
//! `buffer_unordered`), and each limit cuts the key sequence at one
//! place. A truncated answer therefore always covers the same leading
//! keys, and pages of it neither overlap nor skip.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use super::{Answer, Query, QueryLimits, Row};
use crate::error::{ErrorKind, Result};
use crate::key::Key;
use crate::store::{Body, Store};

/// What reading one listed key gave.
enum Read {
    /// A JSON document the filter matches.
    Match(Row, u64),
    /// A JSON document the filter does not match.
    Miss(u64),
    /// Not a JSON document (or a name that is not a valid key).
    NotJson(u64),
    /// Deleted between the listing and the read.
    Gone,
    /// Reading it would pass the byte budget.
    OverBudget,
}

/// Bytes read by the documents consumed so far, in key order. Reads in
/// flight consult it to give up early: it only grows, so an object that
/// does not fit now will not fit when its turn comes.
struct Budget {
    max: u64,
    used: AtomicU64,
}

impl Budget {
    fn remaining(&self) -> u64 {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    /// Counts an object, or says it does not fit.
    fn take(&self, size: u64) -> bool {
        let used = self.used.load(Ordering::Acquire);
        if used.saturating_add(size) > self.max {
            return false;
        }
        // Only the consumer calls `take`, so load-then-store is not racy.
        self.used.store(used + size, Ordering::Release);
        true
    }
}

/// Answers a query over `store`.
pub async fn run(store: &dyn Store, query: &Query, limits: &QueryLimits) -> Result<Answer> {
    let listing = store.list(&query.prefix, None).await?;
    let mut keys = listing.keys;
    let mut truncated = false;
    for cap in [limits.max_keys, limits.max_fetch_keys] {
        if keys.len() > cap {
            keys.truncate(cap);
            truncated = true;
        }
    }

    let budget = Budget {
        max: limits.max_fetch_bytes,
        used: AtomicU64::new(0),
    };
    let mut reads = stream::iter(keys)
        .map(|key| read(store, key, query, &budget))
        .buffered(limits.fetch_concurrency.max(1));
    let mut rows = Vec::new();
    let mut skipped = 0;
    while let Some(read) = reads.try_next().await? {
        let size = match &read {
            Read::Match(_, size) | Read::Miss(size) | Read::NotJson(size) => *size,
            Read::Gone => continue,
            Read::OverBudget => u64::MAX,
        };
        if !budget.take(size) {
            truncated = true;
            break; // dropping `reads` cancels the reads still in flight
        }
        match read {
            Read::Match(row, _) => rows.push(row),
            Read::NotJson(_) => skipped += 1,
            _ => {}
        }
    }
    drop(reads);

    query.sort.apply(&mut rows);
    let total = rows.len();
    let page: Vec<Row> = rows
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .collect();
    let keys = query
        .keys
        .then(|| page.iter().map(|row| row.key.clone()).collect());
    Ok(Answer {
        rows: page.into_iter().map(|row| row.document).collect(),
        keys,
        total,
        truncated,
        skipped,
    })
}

/// Reads one object within what is left of the budget and tests it.
async fn read(store: &dyn Store, name: String, query: &Query, budget: &Budget) -> Result<Read> {
    // Listings can hold names the protocol would refuse as keys (written
    // by other tools); they cannot be read through the store, so they
    // count as skipped.
    let Ok(key) = Key::parse(name.as_str()) else {
        tracing::debug!(key = %name, "query skips a name that is not a valid key");
        return Ok(Read::NotJson(0));
    };
    let object = match store.get(&key).await {
        Ok(object) => object,
        Err(e) if e.kind() == ErrorKind::KeyNotFound => return Ok(Read::Gone),
        Err(other) => return Err(other),
    };
    if object.meta.size > budget.remaining() {
        return Ok(Read::OverBudget);
    }
    let Some(data) = collect_within(object.body, budget).await? else {
        return Ok(Read::OverBudget);
    };
    let size = data.len() as u64;
    let Ok(document) = serde_json::from_slice::<Value>(&data) else {
        return Ok(Read::NotJson(size));
    };
    Ok(if query.filter.matches(&document) {
        Read::Match(
            Row {
                key: name,
                document,
            },
            size,
        )
    } else {
        Read::Miss(size)
    })
}

/// The whole body, or `None` as soon as it passes what is left of the
/// budget (a stream is not read further).
async fn collect_within(body: Body, budget: &Budget) -> Result<Option<Bytes>> {
    match body {
        Body::Full(bytes) => Ok((bytes.len() as u64 <= budget.remaining()).then_some(bytes)),
        Body::Stream { mut stream, size } => {
            let mut buffer = BytesMut::with_capacity(size.unwrap_or(0) as usize);
            while let Some(chunk) = stream.next().await {
                buffer.extend_from_slice(&chunk?);
                if buffer.len() as u64 > budget.remaining() {
                    return Ok(None);
                }
            }
            Ok(Some(buffer.freeze()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Condition;
    use crate::store::memory::MemoryStore;
    use serde_json::json;

    async fn store_with(documents: &[(&str, &str)]) -> MemoryStore {
        let store = MemoryStore::new("");
        for (key, data) in documents {
            store
                .put(
                    &Key::parse(*key).unwrap(),
                    Body::Full(Bytes::from(data.to_string())),
                    Condition::None,
                )
                .await
                .unwrap();
        }
        store
    }

    fn query(body: serde_json::Value, limits: &QueryLimits) -> Query {
        Query::parse(body.to_string().as_bytes(), limits).unwrap()
    }

    fn numbered(count: usize) -> Vec<(String, String)> {
        (0..count)
            .map(|i| {
                (
                    format!("docs/{i:03}"),
                    json!({"i": i, "parity": i % 2, "group": i % 3}).to_string(),
                )
            })
            .collect()
    }

    async fn store_of(documents: &[(String, String)]) -> MemoryStore {
        let pairs: Vec<(&str, &str)> = documents
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        store_with(&pairs).await
    }

    #[tokio::test]
    async fn filters_sorts_and_counts_under_the_prefix_only() {
        let store = store_with(&[
            ("results/a", r#"{"status":"failed","t":3}"#),
            ("results/b", r#"{"status":"done","t":1}"#),
            ("results/c", r#"{"status":"failed","t":10}"#),
            ("results/d", "not json"),
            ("other/e", r#"{"status":"failed","t":99}"#),
        ])
        .await;
        let limits = QueryLimits::default();
        let q = query(
            json!({"prefix": "results/", "filter": {"status": "failed"}, "sort": ["-t"], "keys": true}),
            &limits,
        );
        let answer = run(&store, &q, &limits).await.unwrap();
        assert_eq!(
            answer.keys,
            Some(vec!["results/c".into(), "results/a".into()])
        );
        assert_eq!(answer.rows[0], json!({"status": "failed", "t": 10}));
        assert_eq!(
            (answer.total, answer.skipped, answer.truncated),
            (2, 1, false)
        );
    }

    #[tokio::test]
    async fn pages_neither_overlap_nor_skip() {
        let documents = numbered(100);
        let store = store_of(&documents).await;
        let limits = QueryLimits::default();
        let mut seen = Vec::new();
        for offset in (0..100).step_by(7) {
            let q = query(
                json!({"sort": ["-group"], "limit": 7, "offset": offset, "keys": true}),
                &limits,
            );
            let answer = run(&store, &q, &limits).await.unwrap();
            assert_eq!(answer.total, 100);
            seen.extend(answer.keys.unwrap());
        }
        let mut expected: Vec<(i64, String)> = documents
            .iter()
            .enumerate()
            .map(|(i, (key, _))| (-((i % 3) as i64), key.clone()))
            .collect();
        expected.sort();
        let expected: Vec<String> = expected.into_iter().map(|(_, key)| key).collect();
        assert_eq!(seen, expected);
    }

    #[tokio::test]
    async fn key_limits_cut_the_scan_at_the_first_keys_and_say_so() {
        let store = store_of(&numbered(50)).await;
        for limits in [
            QueryLimits {
                max_keys: 20,
                ..QueryLimits::default()
            },
            QueryLimits {
                max_fetch_keys: 20,
                ..QueryLimits::default()
            },
        ] {
            let q = query(json!({"filter": {"parity": 0}, "keys": true}), &limits);
            let answer = run(&store, &q, &limits).await.unwrap();
            assert!(answer.truncated, "{limits:?}");
            assert_eq!(answer.total, 10, "{limits:?}");
            assert_eq!(answer.keys.unwrap().last().unwrap(), "docs/018");
        }
        let exact = QueryLimits {
            max_keys: 50,
            max_fetch_keys: 50,
            ..QueryLimits::default()
        };
        let answer = run(&store, &query(json!({}), &exact), &exact)
            .await
            .unwrap();
        assert!(!answer.truncated);
        assert_eq!(answer.total, 50);
    }

    #[tokio::test]
    async fn the_byte_budget_stops_before_the_first_object_that_does_not_fit() {
        let body = |i: usize| json!({"i": format!("{i:02}"), "pad": "x".repeat(90)}).to_string();
        let documents: Vec<(String, String)> =
            (0..30).map(|i| (format!("d/{i:02}"), body(i))).collect();
        let size = documents[0].1.len() as u64;
        assert!(documents.iter().all(|(_, d)| d.len() as u64 == size));
        let store = store_of(&documents).await;
        for concurrency in [1, 4, 32] {
            let limits = QueryLimits {
                max_fetch_bytes: size * 10 + size / 2,
                fetch_concurrency: concurrency,
                ..QueryLimits::default()
            };
            let answer = run(&store, &query(json!({"keys": true}), &limits), &limits)
                .await
                .unwrap();
            assert!(answer.truncated);
            assert_eq!(answer.total, 10, "concurrency {concurrency}");
            assert_eq!(answer.keys.unwrap().last().unwrap(), "d/09");
        }
        let roomy = QueryLimits {
            max_fetch_bytes: size * 30,
            ..QueryLimits::default()
        };
        let answer = run(&store, &query(json!({}), &roomy), &roomy)
            .await
            .unwrap();
        assert!(!answer.truncated);
        assert_eq!(answer.total, 30);
    }

    #[tokio::test]
    async fn non_json_objects_count_toward_skipped_and_the_budget() {
        let store = store_with(&[
            ("a", "{\"ok\":true}"),
            ("b", "\u{0}\u{1}binary"),
            ("c", "{truncated"),
            ("d", "[1,2]"),
            ("e", "7"),
        ])
        .await;
        let limits = QueryLimits::default();
        let answer = run(&store, &query(json!({"keys": true}), &limits), &limits)
            .await
            .unwrap();
        assert_eq!(answer.skipped, 2);
        assert_eq!(answer.keys.unwrap(), ["a", "d", "e"]);
        assert_eq!(answer.rows, [json!({"ok": true}), json!([1, 2]), json!(7)]);
    }

    #[tokio::test]
    async fn limit_zero_answers_up_to_the_maximum_and_total_stays_honest() {
        let store = store_of(&numbered(25)).await;
        let limits = QueryLimits {
            max_result_rows: 10,
            ..QueryLimits::default()
        };
        let answer = run(&store, &query(json!({"limit": 0}), &limits), &limits)
            .await
            .unwrap();
        assert_eq!(
            (answer.rows.len(), answer.total, answer.truncated),
            (10, 25, false)
        );
        let past = run(&store, &query(json!({"offset": 30}), &limits), &limits)
            .await
            .unwrap();
        assert_eq!((past.rows.len(), past.total), (0, 25));
    }
}

//! The contract of [`Store`] (the list in `store`'s module docs), as one
//! suite run against every store that needs no other process: `memory`,
//! `fs`, and the fault-injecting decorator when it is honest. The remote
//! stores are held to the same contract by the conformance suite against
//! their emulators (component profiles).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use super::faulty::FaultyStore;
use super::fs::{FsOptions, FsStore};
use super::memory::MemoryStore;
use super::{Body, Condition, Store, Version};
use crate::error::{ErrorKind, kind_of};
use crate::key::Key;

fn key(k: &str) -> Key {
    Key::parse(k).unwrap()
}

fn full(data: &'static str) -> Body {
    Body::Full(Bytes::from_static(data.as_bytes()))
}

async fn content(store: &dyn Store, k: &str) -> (Bytes, Version) {
    let object = store.get(&key(k)).await.unwrap();
    let data = match object.body {
        Body::Full(bytes) => bytes,
        Body::Stream { stream, .. } => {
            Bytes::from(stream.try_collect::<Vec<Bytes>>().await.unwrap().concat())
        }
    };
    assert_eq!(data.len() as u64, object.meta.size, "{k}: size");
    (data, object.meta.version)
}

/// Every rule of the contract, under `contract/`.
async fn check(store: &dyn Store) {
    // A missing key is not found, by every call that reads it.
    assert_eq!(
        kind_of(&store.get(&key("contract/none")).await),
        Some(ErrorKind::KeyNotFound),
        "get"
    );
    assert_eq!(
        kind_of(&store.head(&key("contract/none")).await),
        Some(ErrorKind::KeyNotFound),
        "head"
    );
    assert_eq!(
        kind_of(&store.delete(&key("contract/none"), Condition::None).await),
        Some(ErrorKind::KeyNotFound),
        "delete"
    );

    // get, head and put agree on the version, which changes with the content.
    let first = store
        .put(&key("contract/k"), full("one"), Condition::None)
        .await
        .unwrap();
    assert_eq!(
        content(store, "contract/k").await,
        (Bytes::from("one"), first.clone())
    );
    let meta = store.head(&key("contract/k")).await.unwrap();
    assert_eq!((meta.size, &meta.version), (3, &first));
    let second = store
        .put(
            &key("contract/k"),
            full("two"),
            Condition::IfMatch(first.clone()),
        )
        .await
        .unwrap();
    assert_ne!(first, second);

    // Conditions that do not hold fail and change nothing.
    assert_eq!(
        kind_of(
            &store
                .put(&key("contract/k"), full("x"), Condition::IfAbsent)
                .await
        ),
        Some(ErrorKind::PreconditionFailed),
        "if-absent on an existing key"
    );
    assert_eq!(
        kind_of(
            &store
                .put(
                    &key("contract/k"),
                    full("x"),
                    Condition::IfMatch(first.clone()),
                )
                .await
        ),
        Some(ErrorKind::PreconditionFailed),
        "a stale if-match"
    );
    assert_eq!(content(store, "contract/k").await.0, "two");
    assert_eq!(
        kind_of(
            &store
                .put(
                    &key("contract/new"),
                    full("x"),
                    Condition::IfMatch(second.clone()),
                )
                .await
        ),
        Some(ErrorKind::PreconditionFailed),
        "if-match on a missing key"
    );
    assert_eq!(
        kind_of(&store.head(&key("contract/new")).await),
        Some(ErrorKind::KeyNotFound),
        "a refused write creates nothing"
    );
    store
        .put(&key("contract/new"), full("x"), Condition::IfAbsent)
        .await
        .unwrap();

    // Conditional deletes, where the store claims them.
    if store.info().conditional_delete {
        assert_eq!(
            kind_of(
                &store
                    .delete(&key("contract/k"), Condition::IfMatch(first))
                    .await
            ),
            Some(ErrorKind::PreconditionFailed),
            "a stale conditional delete"
        );
        store
            .delete(&key("contract/k"), Condition::IfMatch(second))
            .await
            .unwrap();
        assert_eq!(
            kind_of(&store.head(&key("contract/k")).await),
            Some(ErrorKind::KeyNotFound),
            "deleted"
        );
    }

    // A streamed body is stored whole.
    let chunks = ["str", "eam", "ed"].map(|part| Ok(Bytes::from_static(part.as_bytes())));
    let stream = Body::Stream {
        stream: futures_util::stream::iter(chunks).boxed(),
        size: None,
    };
    store
        .put(&key("contract/streamed"), stream, Condition::None)
        .await
        .unwrap();
    assert_eq!(content(store, "contract/streamed").await.0, "streamed");

    // Listings are complete, sorted by bytes, folded at the delimiter.
    for k in [
        "contract/l/b",
        "contract/l/a/2",
        "contract/l/a/1",
        "contract/l/c/d/e",
    ] {
        store
            .put(&key(k), full("x"), Condition::None)
            .await
            .unwrap();
    }
    let level = store.list("contract/l/", Some("/")).await.unwrap();
    assert_eq!(level.keys, ["contract/l/b"]);
    assert_eq!(level.prefixes, ["contract/l/a/", "contract/l/c/"]);
    let all = store.list("contract/l/", None).await.unwrap();
    assert_eq!(
        all.keys,
        [
            "contract/l/a/1",
            "contract/l/a/2",
            "contract/l/b",
            "contract/l/c/d/e"
        ]
    );
    assert!(all.prefixes.is_empty());
}

#[tokio::test]
async fn the_memory_store_keeps_the_contract() {
    check(&MemoryStore::new("tenant")).await;
}

#[tokio::test]
async fn the_fs_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsStore::open(FsOptions {
        dir: dir.path().to_owned(),
        prefix: "tenant".to_owned(),
        sync: false,
    })
    .unwrap();
    check(&store).await;
}

#[tokio::test]
async fn an_honest_fault_injector_keeps_the_contract() {
    check(&FaultyStore::new(Arc::new(MemoryStore::new("")))).await;
}

//! Scenarios every object-store backend (S3, GCS) runs the same way:
//! filling and emptying a bucket through the proxy, and a listing that
//! needs more than one page of the emulator's own API.

use std::time::Instant;

use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use state_client::{Client, Condition};

use crate::backend::{GcsBackend, S3Backend};

/// More objects than one S3 or GCS page (1000) holds.
const PAGED_OBJECTS: usize = 1100;
/// Objects in sub-"directories" of the paged listing.
const NESTED_OBJECTS: usize = 3;
/// Requests in flight while filling and emptying the bucket.
const PARALLEL: usize = 16;

/// A bucket seen through the emulator's own API, past the proxy.
pub(crate) trait EmulatorBucket {
    /// The full object name of a key (the configured prefix included).
    fn object_name(&self, key: &str) -> String;

    /// Every object name under a full name prefix, with the number of
    /// pages the emulator needed at `page_size` a page.
    async fn all_names(
        &self,
        name_prefix: &str,
        page_size: u32,
    ) -> Result<(Vec<String>, usize), String>;
}

impl EmulatorBucket for S3Backend {
    fn object_name(&self, key: &str) -> String {
        self.name(key)
    }

    async fn all_names(
        &self,
        name_prefix: &str,
        page_size: u32,
    ) -> Result<(Vec<String>, usize), String> {
        S3Backend::all_names(self, name_prefix, page_size).await
    }
}

impl EmulatorBucket for GcsBackend {
    fn object_name(&self, key: &str) -> String {
        self.name(key)
    }

    async fn all_names(
        &self,
        name_prefix: &str,
        page_size: u32,
    ) -> Result<(Vec<String>, usize), String> {
        GcsBackend::all_names(self, name_prefix, page_size).await
    }
}

/// Writes each key with its own name as the value, a few at a time.
pub(crate) async fn put_all(client: &Client, keys: &[String]) -> Result<(), String> {
    futures_util::stream::iter(keys)
        .map(|key| async move {
            client
                .put(key, key.clone(), Condition::None)
                .await
                .map(|_| ())
                .map_err(|e| format!("PUT {key}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

pub(crate) async fn delete_all(client: &Client, keys: &[String]) -> Result<(), String> {
    futures_util::stream::iter(keys)
        .map(|key| async move {
            client
                .delete(key, Condition::None)
                .await
                .map_err(|e| format!("DELETE {key}: {e}"))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

/// 1100 objects and a few nested ones: the emulator itself needs two
/// pages for them, and the proxy must list every one, recursively and by
/// directory. `store` names the backend in the printed summary.
pub(crate) async fn listing_across_pages(
    client: &Client,
    bucket: &impl EmulatorBucket,
    store: &str,
    dir: &str,
) -> Result<Value, String> {
    let mut keys: Vec<String> = (0..PAGED_OBJECTS)
        .map(|i| format!("{dir}/{i:05}"))
        .collect();
    let nested: Vec<String> = (0..NESTED_OBJECTS)
        .map(|i| format!("{dir}/sub{i}/x"))
        .collect();
    keys.extend(nested.iter().cloned());
    keys.sort();
    let started = Instant::now();
    put_all(client, &keys).await?;
    let fill_seconds = started.elapsed().as_secs_f64();

    let (names, pages) = bucket
        .all_names(&bucket.object_name(&format!("{dir}/")), 1000)
        .await?;
    if names.len() != keys.len() || pages < 2 {
        return Err(format!(
            "the emulator lists {} objects in {pages} page(s); expected {} over at least 2",
            names.len(),
            keys.len()
        ));
    }

    let started = Instant::now();
    let recursive = client
        .list(&format!("{dir}/"), Some(""))
        .await
        .map_err(|e| format!("recursive listing: {e}"))?;
    let list_seconds = started.elapsed().as_secs_f64();
    if recursive.keys != keys || !recursive.prefixes.is_empty() {
        return Err(format!(
            "recursive listing has {} keys and {} prefixes; expected all {} keys in byte order",
            recursive.keys.len(),
            recursive.prefixes.len(),
            keys.len()
        ));
    }
    let by_directory = client
        .list(&format!("{dir}/"), Some("/"))
        .await
        .map_err(|e| format!("listing with delimiter: {e}"))?;
    let flat: Vec<String> = keys
        .iter()
        .filter(|k| !nested.contains(k))
        .cloned()
        .collect();
    let prefixes: Vec<String> = (0..NESTED_OBJECTS)
        .map(|i| format!("{dir}/sub{i}/"))
        .collect();
    if by_directory.keys != flat || by_directory.prefixes != prefixes {
        return Err(format!(
            "listing with '/' has {} keys and prefixes {:?}; expected {} keys and {prefixes:?}",
            by_directory.keys.len(),
            by_directory.prefixes,
            flat.len()
        ));
    }

    delete_all(client, &keys).await?;
    let left = client
        .list(&format!("{dir}/"), Some(""))
        .await
        .map_err(|e| format!("listing after deleting: {e}"))?;
    let (in_emulator, _) = bucket
        .all_names(&bucket.object_name(&format!("{dir}/")), 1000)
        .await?;
    if !left.keys.is_empty() || !in_emulator.is_empty() {
        return Err(format!(
            "{} keys listed and {} objects in the emulator after deleting them all",
            left.keys.len(),
            in_emulator.len()
        ));
    }
    println!(
        "{store}: {} objects written in {fill_seconds:.1} s, listed over {pages} emulator pages in {list_seconds:.2} s",
        keys.len()
    );
    Ok(json!({
        "objects": keys.len(),
        "emulator_pages": pages,
        "fill_seconds": fill_seconds,
        "list_seconds": list_seconds,
    }))
}

//! Storage backends. Each one implements the small [`Store`] trait of
//! primitives; consistency policy lives in `mode`, wire details in `http`.
//!
//! Contract every store keeps:
//! - keys passed in are validated ([`Key`]) and relative to the store's
//!   prefix; the store adds the prefix its own way;
//! - every object has an opaque [`Version`] that changes whenever its
//!   content changes, returned by `get`, `head` and `put`;
//! - a [`Condition`] that does not hold answers
//!   [`ErrorKind::PreconditionFailed`](crate::error::ErrorKind::PreconditionFailed),
//!   also for `IfMatch` on a missing key, atomically with the write;
//! - a missing key answers
//!   [`ErrorKind::KeyNotFound`](crate::error::ErrorKind::KeyNotFound), except
//!   under `IfMatch`, where it is a failed precondition;
//! - a store never answers `VersionConflict` (the mode's, for
//!   compare-and-swap); a backend that refuses a key in its present state
//!   answers `KeyConflict`;
//! - listings are complete and sorted by byte order.
//!
//! `contract` checks these rules; docs/design.md says what adding a store
//! takes.

#[cfg(test)]
mod contract;
pub mod faulty;
pub mod fs;
pub mod gcs;
pub(crate) mod http_client;
pub mod listing;
pub mod memory;
pub mod redis;
pub mod s3;

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

use crate::error::Result;
use crate::key::Key;

/// A stream of body chunks, in either direction.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// An opaque version token, without the quotes it wears as an `ETag`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version(String);

impl Version {
    /// Wraps a backend token; surrounding quotes (S3 ETags) are dropped so
    /// that every version is rendered and compared the same way.
    pub fn new(token: impl Into<String>) -> Version {
        let token = token.into();
        match token.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            Some(inner) => Version(inner.to_owned()),
            None => Version(token),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The strong `ETag` header value. Built by hand, not formatted: it
    /// goes out on nearly every answer.
    pub fn etag(&self) -> String {
        let mut quoted = String::with_capacity(self.0.len() + 2);
        quoted.push('"');
        quoted.push_str(&self.0);
        quoted.push('"');
        quoted
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a write or delete requires of the current object, atomically.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Condition {
    /// Unconditional.
    #[default]
    None,
    /// Only if no object exists under the key (`If-None-Match: *`).
    IfAbsent,
    /// Only if the object exists with exactly this version (`If-Match`).
    IfMatch(Version),
}

/// Size and version of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub version: Version,
}

/// A body, either whole in memory or streamed chunk by chunk.
pub enum Body {
    Full(Bytes),
    /// `size` is known when the sender announced it (`Content-Length`, or
    /// the object size on reads).
    Stream {
        stream: ByteStream,
        size: Option<u64>,
    },
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Body::Full(bytes) => write!(f, "Body::Full({} bytes)", bytes.len()),
            Body::Stream { size, .. } => write!(f, "Body::Stream(size {size:?})"),
        }
    }
}

/// An object read from a store: its metadata and its content.
#[derive(Debug)]
pub struct Object {
    pub meta: ObjectMeta,
    pub body: Body,
}

/// The result of a listing, keys relative to the store's prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub keys: Vec<String>,
    pub prefixes: Vec<String>,
}

/// An extended attribute a store offers through `/meta`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrSpec {
    pub name: &'static str,
    pub settable: bool,
}

/// What a store can do, as far as the layers above need to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreInfo {
    /// The store part of a connector name (`fs`, `s3`, ...).
    pub name: &'static str,
    /// Attributes served by `/meta`, in the order they are listed.
    pub attributes: &'static [AttrSpec],
    /// `DELETE` with `If-Match` is enforced by the backend.
    pub conditional_delete: bool,
    /// `a` and `a/c` can exist side by side (object stores can, a file
    /// system cannot).
    pub nested_keys: bool,
    /// Objects can be given a time to live (through an attribute).
    pub ttl: bool,
    /// What a write of a streamed body (`passthrough`) holds in memory,
    /// which the proxy counts against its memory budget.
    pub streamed_write: WriteMemory,
    /// A read holds the whole object in memory (the backend cannot stream
    /// a value), so the proxy counts it against its memory budget until
    /// it was sent.
    pub whole_reads: bool,
}

/// How much of a streamed body a store's write holds in memory at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMemory {
    /// Chunks go on as they arrive; nothing beyond them is held.
    Chunks,
    /// At most about this many bytes, whatever the body's size (parts or
    /// batches being gathered and written).
    AtMost(u64),
    /// The whole body: the backend takes a value in one piece.
    Whole,
}

/// Maps keys to backend object names under a configured prefix, the
/// object-store way (compat): `prefix + "/" + key`, or just `key`.
#[derive(Clone, Debug, Default)]
pub struct ObjectNames {
    prefix: String,
}

impl ObjectNames {
    pub fn new(prefix: &str) -> Self {
        ObjectNames {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// The backend name of a key.
    pub fn name(&self, key: &str) -> String {
        let mut name = String::with_capacity(self.prefix.len() + key.len());
        name.push_str(&self.prefix);
        name.push_str(key);
        name
    }

    /// The key of a backend name, `None` when it is outside the prefix.
    pub fn key<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.strip_prefix(&self.prefix)
    }
}

impl StoreInfo {
    pub fn attribute(&self, name: &str) -> Option<&AttrSpec> {
        self.attributes.iter().find(|spec| spec.name == name)
    }
}

/// The primitives every backend implements.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn info(&self) -> &StoreInfo;

    /// Reads an object with its version.
    async fn get(&self, key: &Key) -> Result<Object>;

    /// Size and version without the content.
    async fn head(&self, key: &Key) -> Result<ObjectMeta>;

    /// Writes an object if `condition` holds; returns the new version.
    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version>;

    /// Deletes an object if `condition` holds (`IfAbsent` is never passed).
    async fn delete(&self, key: &Key, condition: Condition) -> Result<()>;

    /// Lists keys under `prefix`; with a delimiter, keys containing it
    /// after the prefix are folded into common prefixes.
    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing>;

    /// The names of the attributes [`Store::get_attr`] can read here, as
    /// `/meta` lists them: all of [`StoreInfo::attributes`] unless the
    /// backend lacks what one needs (GCS without credentials that sign
    /// has no `signed_url`). An attribute is listed only when it can be
    /// read.
    async fn readable_attributes(&self) -> Vec<&'static str> {
        self.info()
            .attributes
            .iter()
            .map(|spec| spec.name)
            .collect()
    }

    /// Reads an attribute named in [`StoreInfo::attributes`].
    async fn get_attr(&self, key: &Key, name: &str) -> Result<String>;

    /// Sets a settable attribute named in [`StoreInfo::attributes`].
    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()>;

    /// A cheap call that shows the backend answers (and the configured
    /// bucket or database is usable), for readiness probes.
    async fn probe(&self) -> Result<()>;
}

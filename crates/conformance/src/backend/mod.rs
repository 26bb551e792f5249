//! Direct access to a backend, bypassing the proxy, to check that an
//! object written through the proxy is where the protocol
//! (docs/protocol.md) says it is.

pub mod fs;
pub mod gcs;
pub mod redis;
pub mod s3;

use std::future::Future;
use std::pin::Pin;

pub use fs::FsBackend;
pub use gcs::GcsBackend;
pub use redis::RedisBackend;
pub use s3::S3Backend;

pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Reads objects straight from the storage behind a proxy.
pub trait Backend: Send + Sync {
    /// Where objects are, for messages (`s3://bucket/prefix`, a path...).
    fn describe(&self) -> String;

    /// The content stored for `key` (relative to the configured prefix),
    /// found by the backend's own naming rule; `None` when absent.
    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>>;
}

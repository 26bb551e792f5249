//! Direct access to a backend, bypassing the proxy, to check that an
//! object written through the proxy is where PROTOCOL.md says it is.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Reads objects straight from the storage behind a proxy.
pub trait Backend: Send + Sync {
    /// Where objects are, for messages (`s3://bucket/prefix`, a path...).
    fn describe(&self) -> String;

    /// The content stored for `key` (relative to the configured prefix),
    /// found by the backend's own naming rule; `None` when absent.
    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>>;
}

/// The `fs` store: `STATE_DIR/STATE_PREFIX/key`.
pub struct FsBackend {
    pub dir: PathBuf,
    pub prefix: String,
}

impl Backend for FsBackend {
    fn describe(&self) -> String {
        self.dir.join(&self.prefix).display().to_string()
    }

    fn read(&self, key: &str) -> BackendFuture<'_, Option<Vec<u8>>> {
        let path = self.dir.join(&self.prefix).join(key);
        Box::pin(async move {
            match tokio::fs::read(&path).await {
                Ok(data) => Ok(Some(data)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(format!("reading {}: {e}", path.display())),
            }
        })
    }
}

//! The `fs` store's files, read directly.

use std::path::PathBuf;

use super::{Backend, BackendFuture};

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

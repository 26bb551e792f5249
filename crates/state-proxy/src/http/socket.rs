//! The Unix socket file: claimed at start, released at exit.

use std::fs;
use std::io::{self, ErrorKind};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::UnixListener;

/// A bound socket and the identity of its file, so that at exit we remove
/// our own socket file and never one another process put there since.
pub struct BoundSocket {
    pub listener: UnixListener,
    path: PathBuf,
    inode: (u64, u64),
}

impl BoundSocket {
    /// Binds `path` with permissions `mode`. A stale socket file (nobody
    /// answers on it) is replaced; a live one, or a file that is not a
    /// socket, is left alone and start fails with the reason.
    pub fn bind(path: &Path, mode: u32) -> Result<BoundSocket, String> {
        match fs::symlink_metadata(path) {
            Ok(stat) if !stat.file_type().is_socket() => {
                return Err(format!(
                    "{} exists and is not a socket; refusing to replace it",
                    path.display()
                ));
            }
            Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => {
                    return Err(format!(
                        "another process is serving on {}; stop it or choose another socket path",
                        path.display()
                    ));
                }
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                    tracing::info!(socket = %path.display(), "replacing a stale socket file");
                    fs::remove_file(path)
                        .map_err(|e| describe(path, "removing the stale socket", e))?;
                }
                Err(e) => return Err(describe(path, "checking the existing socket", e)),
            },
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(describe(path, "inspecting the socket path", e)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| describe(parent, "creating the socket directory", e))?;
        }
        let listener = bind_with_mode(path, mode)?;
        let stat =
            fs::symlink_metadata(path).map_err(|e| describe(path, "inspecting the socket", e))?;
        Ok(BoundSocket {
            listener,
            path: path.to_owned(),
            inode: (stat.dev(), stat.ino()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Splits into the listener and a handle that removes the file.
    pub fn into_parts(self) -> (UnixListener, SocketFile) {
        (
            self.listener,
            SocketFile {
                path: self.path,
                inode: self.inode,
            },
        )
    }
}

/// The socket file we created, removed when no longer served.
pub struct SocketFile {
    path: PathBuf,
    inode: (u64, u64),
}

impl SocketFile {
    pub fn remove(&self) {
        let ours = fs::symlink_metadata(&self.path)
            .is_ok_and(|stat| (stat.dev(), stat.ino()) == self.inode);
        if ours && let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), error = %e, "could not remove the socket file");
        }
    }
}

/// Binds the socket in a private directory beside `path` (mode 0700, so
/// nobody else can connect whatever the umask), gives it its final mode
/// there, and only then links it to `path`: it never exists under its
/// own name with other permissions. `link` refuses to replace a file that
/// appeared at `path` meanwhile.
fn bind_with_mode(path: &Path, mode: u32) -> Result<UnixListener, String> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let private = parent.join(format!(".state-proxy-bind-{}", std::process::id()));
    let _ = fs::remove_dir_all(&private); // left by a crash of this pid
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| describe(&private, "creating a private directory for the socket", e))?;
    let staged = private.join("s");
    let bound = (|| {
        let listener = UnixListener::bind(&staged).map_err(|e| describe(path, "binding", e))?;
        fs::set_permissions(&staged, fs::Permissions::from_mode(mode))
            .map_err(|e| describe(path, "setting the socket mode", e))?;
        fs::hard_link(&staged, path).map_err(|e| describe(path, "binding", e))?;
        Ok(listener)
    })();
    let _ = fs::remove_dir_all(&private);
    bound
}

fn describe(path: &Path, doing: &str, e: io::Error) -> String {
    format!("{doing} {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_and_live_one_is_not_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sock");
        // A socket file nobody listens on any more.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let bound = BoundSocket::bind(&path, 0o660).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        let refused = BoundSocket::bind(&path, 0o660).err().unwrap();
        assert!(refused.contains("another process is serving"), "{refused}");
        let (_listener, file) = bound.into_parts();
        file.remove();
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn regular_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sock");
        fs::write(&path, "precious").unwrap();
        let refused = BoundSocket::bind(&path, 0o660).err().unwrap();
        assert!(refused.contains("is not a socket"), "{refused}");
        assert_eq!(fs::read(&path).unwrap(), b"precious");
    }

    #[tokio::test]
    async fn a_replaced_socket_file_is_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sock");
        let (_listener, file) = BoundSocket::bind(&path, 0o600).unwrap().into_parts();
        fs::remove_file(&path).unwrap();
        let _other = std::os::unix::net::UnixListener::bind(&path).unwrap();
        file.remove();
        assert!(path.exists());
    }
}

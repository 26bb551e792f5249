//! State mounts (`ASYA_STATE_PROXY_MOUNTS`): a file written under a
//! mount's path becomes `PUT /keys/<path relative to the mount>` on that
//! mount's state proxy socket, `<ASYA_STATE_SOCKET_DIR>/<name>.sock`.
//!
//! `write=buffered` sends the whole body with a `Content-Length`;
//! `write=passthrough` streams it chunked, one chunk per write, the way
//! the original runtime's passthrough files do.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use state_client::{Client, ClientError, Condition};

/// Size of one chunk of a streamed (passthrough) write.
const CHUNK: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    Buffered,
    Passthrough,
}

pub struct Mount {
    pub name: String,
    pub path: PathBuf,
    pub write: WriteMode,
    client: Client,
}

impl Mount {
    pub fn socket(&self) -> &Path {
        self.client.socket()
    }
}

/// Every mount of one runtime.
#[derive(Default)]
pub struct Mounts {
    mounts: Vec<Mount>,
}

/// A write or read the proxy refused or could not take.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0} is not under any state mount")]
    NotMounted(PathBuf),
    #[error("{path}: {source}")]
    Proxy {
        path: PathBuf,
        #[source]
        source: ClientError,
    },
}

impl MountError {
    /// The proxy's HTTP status, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            MountError::Proxy { source, .. } => source.status(),
            MountError::NotMounted(_) => None,
        }
    }
}

impl Mounts {
    /// Parses `name:/mount/path:write=buffered[;...]`.
    pub fn parse(spec: &str, socket_dir: &Path) -> Result<Mounts, String> {
        let mut mounts = Vec::new();
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.split(':');
            let (Some(name), Some(path)) = (parts.next(), parts.next()) else {
                return Err(format!(
                    "ASYA_STATE_PROXY_MOUNTS: {entry:?} is not name:/path[:options]"
                ));
            };
            let path = PathBuf::from(path);
            if name.is_empty() || name.contains('/') || !path.is_absolute() {
                return Err(format!(
                    "ASYA_STATE_PROXY_MOUNTS: {entry:?} needs a name and an absolute path"
                ));
            }
            let mut write = WriteMode::Buffered;
            for option in parts.flat_map(|p| p.split(',')).filter(|o| !o.is_empty()) {
                write = match option {
                    "write=buffered" => WriteMode::Buffered,
                    "write=passthrough" => WriteMode::Passthrough,
                    _ => {
                        return Err(format!(
                            "ASYA_STATE_PROXY_MOUNTS: unknown option {option:?} in {entry:?} \
                             (write=buffered or write=passthrough)"
                        ));
                    }
                };
            }
            if mounts.iter().any(|m: &Mount| m.name == name) {
                return Err(format!("ASYA_STATE_PROXY_MOUNTS: mount {name} given twice"));
            }
            mounts.push(Mount {
                client: Client::new(socket_dir.join(format!("{name}.sock"))),
                name: name.to_owned(),
                path,
                write,
            });
        }
        Ok(Mounts { mounts })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Mount> {
        self.mounts.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// Waits until every mount's proxy answers `/healthz`; says every few
    /// seconds which one it is still waiting for. No deadline: like a
    /// pod's containers, the proxy may come later than the runtime.
    pub async fn wait_ready(&self) {
        for mount in &self.mounts {
            let mut said = Instant::now();
            while let Err(e) = mount.client.healthz().await {
                if said.elapsed() > Duration::from_secs(5) {
                    tracing::info!(mount = %mount.name, error = %e, "waiting for the state proxy");
                    said = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// The mount holding `path` (the deepest one) and the key of `path`
    /// in it.
    fn resolve(&self, path: &Path) -> Result<(&Mount, String), MountError> {
        let not_mounted = || MountError::NotMounted(path.to_owned());
        let mount = self
            .mounts
            .iter()
            .filter(|m| path.starts_with(&m.path))
            .max_by_key(|m| m.path.components().count())
            .ok_or_else(not_mounted)?;
        let relative = path.strip_prefix(&mount.path).map_err(|_| not_mounted())?;
        // The key is the relative path as it is; `..` or an empty name
        // would escape the mount, so they are not mounted.
        let mut key = Vec::new();
        for component in relative.components() {
            match component {
                Component::Normal(name) => key.push(name.to_str().ok_or_else(not_mounted)?),
                _ => return Err(not_mounted()),
            }
        }
        if key.is_empty() {
            return Err(not_mounted());
        }
        Ok((mount, key.join("/")))
    }

    /// Writes a whole file: one `PUT` (streamed for passthrough mounts).
    pub async fn write(&self, path: &Path, body: Bytes) -> Result<(), MountError> {
        let (mount, key) = self.resolve(path)?;
        let result = match mount.write {
            WriteMode::Buffered => mount.client.put(&key, body, Condition::None).await,
            WriteMode::Passthrough => {
                let chunks = (0..body.len().div_ceil(CHUNK)).map(move |i| {
                    Ok::<_, std::io::Error>(
                        body.slice(i * CHUNK..((i + 1) * CHUNK).min(body.len())),
                    )
                });
                mount
                    .client
                    .put_stream(
                        &key,
                        futures_util::stream::iter(chunks),
                        None,
                        Condition::None,
                    )
                    .await
            }
        };
        result.map(drop).map_err(|source| MountError::Proxy {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads a whole file (which also refreshes a compare-and-swap
    /// proxy's remembered version of it).
    pub async fn read(&self, path: &Path) -> Result<Bytes, MountError> {
        let (mount, key) = self.resolve(path)?;
        mount
            .client
            .get(&key)
            .await
            .map(|object| object.data)
            .map_err(|source| MountError::Proxy {
                path: path.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_parse_with_their_sockets() {
        let mounts = Mounts::parse(
            "results:/state/results:write=buffered; big:/state/big:write=passthrough;",
            Path::new("/run/state"),
        )
        .unwrap();
        let all: Vec<_> = mounts.iter().collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].name, "results");
        assert_eq!(all[0].write, WriteMode::Buffered);
        assert_eq!(all[0].socket(), Path::new("/run/state/results.sock"));
        assert_eq!(all[1].write, WriteMode::Passthrough);
        assert!(Mounts::parse("", Path::new("/s")).unwrap().is_empty());
    }

    #[test]
    fn bad_mounts_are_refused() {
        for spec in [
            "results",
            "results:relative/path",
            ":/state",
            "a:/x:write=sometimes",
            "a:/x;a:/y",
        ] {
            assert!(Mounts::parse(spec, Path::new("/s")).is_err(), "{spec}");
        }
    }

    #[test]
    fn paths_resolve_to_the_deepest_mount_and_never_escape() {
        let mounts = Mounts::parse("outer:/state;inner:/state/inner", Path::new("/s")).unwrap();
        let (mount, key) = mounts
            .resolve(Path::new("/state/inner/succeeded/a.json"))
            .unwrap();
        assert_eq!(
            (mount.name.as_str(), key.as_str()),
            ("inner", "succeeded/a.json")
        );
        let (mount, key) = mounts.resolve(Path::new("/state/x.json")).unwrap();
        assert_eq!((mount.name.as_str(), key.as_str()), ("outer", "x.json"));
        for outside in [
            "/elsewhere/x",
            "/state",
            "/state/../etc/passwd",
            "/statement/x",
        ] {
            assert!(mounts.resolve(Path::new(outside)).is_err(), "{outside}");
        }
    }
}

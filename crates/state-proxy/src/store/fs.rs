//! The `fs` store, the embedded default: one file per key under
//! `STATE_DIR/STATE_PREFIX/`.
//!
//! - Writes are atomic: the body goes to a temporary file first (synced to
//!   disk unless disabled) and is renamed over the target, so a reader sees
//!   the old or the new content, never a mix, and a crash leaves at most a
//!   stray temporary file, never a half-written object.
//! - Conditional writes and deletes are atomic against every writer,
//!   including other processes on the same directory: every write and
//!   delete holds a lock stripe (`flock` on one of a fixed set of lock
//!   files, opened for the occasion) while it checks the condition and
//!   renames.
//! - Each operation is one trip to a blocking thread (a streamed body
//!   adds the writes of its chunks): on machines where waking a thread
//!   is expensive, every hand-off shows in the latency.
//! - The version of a file is its inode number and nanosecond mtime. Each
//!   write creates a new inode and stamps it with the current time; an
//!   inode can be reused only after the old file is gone, later in time,
//!   so the pair never repeats for a key.
//!
//! Internal files live in `STATE_DIR/.state-proxy/` (temporary files and
//! lock stripes); with an empty prefix, keys under that name are refused.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use tokio_util::io::ReaderStream;

use super::listing::ListingBuilder;
use super::{
    AttrSpec, Body, ByteStream, Condition, Listing, Object, ObjectMeta, Store, StoreInfo, Version,
    WriteMemory,
};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

/// Name of the internal directory directly under `STATE_DIR`.
pub const INTERNAL_DIR: &str = ".state-proxy";
/// Number of lock stripes; fixed, because every process sharing a
/// directory must map a key to the same stripe.
const LOCK_STRIPES: usize = 256;
/// Files up to this size are read whole in one blocking call; larger ones
/// are streamed. No more than one read chunk, so that a reader who stops
/// reading holds one chunk, whatever the object.
const WHOLE_READ_MAX: u64 = READ_CHUNK as u64;
/// Chunk size of streamed reads: each chunk is a trip to a blocking
/// thread, but a stalled reader holds about two of them (the file's buffer
/// and the one waiting in the connection), so not more than this.
const READ_CHUNK: usize = 128 << 10;
/// Batch size of streamed writes: large, because each batch is a trip to a
/// blocking thread.
const STREAM_CHUNK: usize = 1 << 20;
/// Temporary files untouched for this long belong to a crashed writer.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

static INFO: StoreInfo = StoreInfo {
    name: "fs",
    attributes: &[
        AttrSpec {
            name: "url",
            settable: false,
        },
        AttrSpec {
            name: "etag",
            settable: false,
        },
    ],
    conditional_delete: true,
    nested_keys: false,
    ttl: false,
    // A batch being gathered and one being written.
    streamed_write: WriteMemory::AtMost(2 * STREAM_CHUNK as u64),
    whole_reads: false,
};

/// Options of the `fs` store.
#[derive(Clone, Debug)]
pub struct FsOptions {
    /// `STATE_DIR`.
    pub dir: PathBuf,
    /// `STATE_PREFIX`, a relative directory under `dir`.
    pub prefix: String,
    /// Flush file content and directory entries to disk before answering
    /// a write (on by default; off trades durability on power loss for
    /// speed, atomicity is kept either way).
    pub sync: bool,
}

pub struct FsStore {
    /// Where objects live: `dir/prefix`.
    root: PathBuf,
    /// Whether keys could reach the internal directory (empty prefix).
    guards_internal_dir: bool,
    temp_dir: PathBuf,
    locks: KeyLocks,
    sync: bool,
}

impl FsStore {
    /// Prepares the directories; fails with a message naming the path.
    pub fn open(options: FsOptions) -> Result<FsStore> {
        let prefix = options.prefix.trim_matches('/');
        if !prefix.is_empty() {
            let prefix_key = Key::parse(prefix).map_err(|e| {
                Error::bad_request(format!("STATE_PREFIX '{prefix}' for the fs store: {e}"))
            })?;
            if prefix_key.as_str().split('/').next() == Some(INTERNAL_DIR) {
                return Err(Error::bad_request(format!(
                    "STATE_PREFIX must not start with the reserved name '{INTERNAL_DIR}'"
                )));
            }
        }
        let internal = options.dir.join(INTERNAL_DIR);
        let temp_dir = internal.join("tmp");
        let lock_dir = internal.join("locks");
        let root = options.dir.join(prefix);
        for dir in [&root, &temp_dir, &lock_dir] {
            fs::create_dir_all(dir).map_err(|e| {
                Error::internal(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        remove_stale_temp_files(&temp_dir);
        Ok(FsStore {
            root,
            guards_internal_dir: prefix.is_empty(),
            temp_dir,
            locks: KeyLocks { dir: lock_dir },
            sync: options.sync,
        })
    }

    fn path(&self, key: &Key) -> Result<PathBuf> {
        if self.guards_internal_dir && key.as_str().split('/').next() == Some(INTERNAL_DIR) {
            return Err(Error::bad_request(format!(
                "keys under '{INTERNAL_DIR}/' are reserved by the fs store"
            )));
        }
        Ok(self.root.join(key.as_str()))
    }

    /// What a write needs once its body is in a temporary file.
    fn commit(&self, key: &Key, condition: Condition) -> Result<Commit> {
        Ok(Commit {
            key: key.to_string(),
            target: self.path(key)?,
            lock: self.locks.path(key),
            root: self.root.clone(),
            sync: self.sync,
            condition,
        })
    }
}

#[async_trait]
impl Store for FsStore {
    fn info(&self) -> &StoreInfo {
        &INFO
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        let path = self.path(key)?;
        let name = key.to_string();
        let (meta, opened) = blocking(move || {
            let missing_or = |e| not_found_or(e, &name, "reading");
            let mut file = File::open(&path).map_err(missing_or)?;
            let stat = file.metadata().map_err(missing_or)?;
            if !stat.is_file() {
                return Err(Error::key_not_found(&name));
            }
            let meta = ObjectMeta {
                size: stat.len(),
                version: version_of(&stat),
            };
            if stat.len() <= WHOLE_READ_MAX {
                let mut data = Vec::with_capacity(stat.len() as usize);
                file.read_to_end(&mut data).map_err(missing_or)?;
                Ok((meta, Ok(Bytes::from(data))))
            } else {
                Ok((meta, Err(file)))
            }
        })
        .await?;
        let body = match opened {
            Ok(bytes) => Body::Full(bytes),
            Err(file) => Body::Stream {
                stream: ReaderStream::with_capacity(tokio::fs::File::from_std(file), READ_CHUNK)
                    .map_err(|e| io_error(e, "reading"))
                    .boxed(),
                size: Some(meta.size),
            },
        };
        Ok(Object { meta, body })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let path = self.path(key)?;
        let name = key.to_string();
        blocking(move || current_version(&path).map_err(|e| io_error(e, "reading metadata")))
            .await?
            .ok_or_else(|| Error::key_not_found(name))
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let commit = self.commit(key, condition)?;
        let temp_dir = self.temp_dir.clone();
        match body {
            Body::Full(bytes) => {
                blocking(move || {
                    let (temp, mut file) =
                        TempPath::create(&temp_dir).map_err(|e| commit.failed(e))?;
                    file.write_all(&bytes).map_err(|e| commit.failed(e))?;
                    commit.run(temp, file)
                })
                .await
            }
            Body::Stream { stream, .. } => {
                let (temp, file) = blocking(move || {
                    TempPath::create(&temp_dir)
                        .map_err(|e| io_error(e, "creating a temporary file"))
                })
                .await?;
                // On a failed stream the temporary file goes with `temp`.
                let file = write_stream(file, stream).await?;
                blocking(move || commit.run(temp, file)).await
            }
        }
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        let target = self.path(key)?;
        let lock = self.locks.path(key);
        let root = self.root.clone();
        let name = key.to_string();
        blocking(move || {
            let deleting = |e| io_error(e, "deleting");
            let _lock = KeyLocks::hold(&lock).map_err(deleting)?;
            let current = current_version(&target).map_err(deleting)?;
            if current.is_none() && condition == Condition::None {
                return Err(Error::key_not_found(name));
            }
            check_condition(&current, &condition)?;
            fs::remove_file(&target).map_err(deleting)?;
            remove_empty_parents(&target, &root);
            Ok(())
        })
        .await
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let root = self.root.clone();
        let hide_internal = self.guards_internal_dir;
        let (prefix, delimiter) = (prefix.to_owned(), delimiter.map(str::to_owned));
        blocking(move || {
            list_files(&root, &prefix, delimiter.as_deref(), hide_internal)
                .map_err(|e| io_error(e, "listing"))
        })
        .await
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        let path = self.path(key)?;
        let meta = self.head(key).await?;
        match name {
            "etag" => Ok(meta.version.to_string()),
            "url" => Ok(format!(
                "file://{}",
                std::path::absolute(&path).unwrap_or(path).display()
            )),
            _ => Err(Error::unsupported_attribute(name)),
        }
    }

    async fn set_attr(&self, _key: &Key, name: &str, _value: &str) -> Result<()> {
        Err(Error::new(
            ErrorKind::PermissionDenied,
            format!("attribute '{name}' is read-only on the fs store"),
        ))
    }

    /// The directory is there and writable (a volume may have gone away).
    async fn probe(&self) -> Result<()> {
        let temp_dir = self.temp_dir.clone();
        blocking(move || {
            TempPath::create(&temp_dir).map(drop).map_err(|e| {
                Error::new(ErrorKind::Unavailable, "the fs store cannot write").with_source(e)
            })
        })
        .await
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(Error::new(ErrorKind::Internal, "fs store, a blocking task failed").with_source(e))
    })
}

/// Writes a stream of chunks to a file: gathered into batches of about
/// [`STREAM_CHUNK`] bytes, one blocking call per batch, the next batch
/// gathered from the network while the previous one is written.
async fn write_stream(file: File, mut stream: ByteStream) -> Result<File> {
    let mut idle = Some(file);
    let mut in_flight: Option<tokio::task::JoinHandle<io::Result<File>>> = None;
    let mut batch: Vec<Bytes> = Vec::new();
    let mut batched = 0;
    loop {
        let next = stream.next().await.transpose();
        let ended = matches!(next, Ok(None));
        match next {
            Ok(Some(chunk)) => {
                batched += chunk.len();
                batch.push(chunk);
                if batched < STREAM_CHUNK {
                    continue;
                }
            }
            Ok(None) => {}
            Err(e) => {
                // Let a write in progress finish before the file is dropped.
                if let Some(writing) = in_flight {
                    let _ = writing.await;
                }
                return Err(e);
            }
        }
        let mut file = match in_flight.take() {
            Some(writing) => writing
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)))
                .map_err(|e| io_error(e, "writing"))?,
            None => idle
                .take()
                .expect("the file is idle when nothing is in flight"),
        };
        let chunks = std::mem::take(&mut batch);
        batched = 0;
        let writing = tokio::task::spawn_blocking(move || {
            chunks.iter().try_for_each(|chunk| file.write_all(chunk))?;
            Ok(file)
        });
        if ended {
            return writing
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)))
                .map_err(|e| io_error(e, "writing"));
        }
        in_flight = Some(writing);
    }
}

fn version_of(stat: &fs::Metadata) -> Version {
    let mtime_nanos = i128::from(stat.mtime()) * 1_000_000_000 + i128::from(stat.mtime_nsec());
    Version::new(format!("{:x}-{mtime_nanos:x}", stat.ino()))
}

/// The version of the file at `path`; `None` when there is no file
/// (a directory or a file where a directory was expected count as none).
fn current_version(path: &Path) -> io::Result<Option<ObjectMeta>> {
    match fs::symlink_metadata(path) {
        Ok(stat) if stat.is_file() => Ok(Some(ObjectMeta {
            size: stat.len(),
            version: version_of(&stat),
        })),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Whether `condition` holds for the current version of a key.
fn check_condition(current: &Option<ObjectMeta>, condition: &Condition) -> Result<()> {
    let failure = match (condition, current) {
        (Condition::None, _) => return Ok(()),
        (Condition::IfAbsent, None) => return Ok(()),
        (Condition::IfAbsent, Some(_)) => "the key already exists",
        (Condition::IfMatch(expected), Some(meta)) if meta.version == *expected => return Ok(()),
        (Condition::IfMatch(_), Some(_)) => "the key does not have the expected version",
        (Condition::IfMatch(_), None) => "the key does not exist",
    };
    Err(Error::new(ErrorKind::PreconditionFailed, failure))
}

/// Renames the temporary file over the target, creating parent
/// directories. A concurrent delete may remove a parent between the two
/// steps (it prunes empty directories), hence the retries.
/// A refused write leaves no trace: the directories it created go again.
fn install(temp: &Path, target: &Path, root: &Path) -> io::Result<()> {
    let mut attempts = 0;
    let installed = loop {
        match fs::rename(temp, target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 8 => {
                attempts += 1;
                if let Some(parent) = target.parent().filter(|p| p.starts_with(root))
                    && let Err(e) = fs::create_dir_all(parent)
                {
                    break Err(e);
                }
            }
            other => break other,
        }
    };
    if installed.is_err() {
        remove_empty_parents(target, root);
    }
    installed
}

fn sync_parent(target: &Path) -> io::Result<()> {
    match target.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Removes directories left empty by a delete or a refused write, up to
/// (not including) the root, so listings do not show prefixes without
/// keys. A directory that is not there (or whose name is too long to
/// exist) is passed over; the first one still holding entries ends it.
fn remove_empty_parents(target: &Path, root: &Path) {
    let mut dir = target.parent();
    while let Some(current) = dir {
        if current == root || !current.starts_with(root) {
            break;
        }
        match fs::remove_dir(current) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::InvalidFilename
                ) => {}
            Err(_) => break,
        }
        dir = current.parent();
    }
}

fn list_files(
    root: &Path,
    prefix: &str,
    delimiter: Option<&str>,
    hide_internal: bool,
) -> io::Result<Listing> {
    let mut builder = ListingBuilder::new(prefix, delimiter);
    // The directory to read is the part of the prefix up to its last '/';
    // segments no key can have mean no key can match.
    let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
    if !dir_part.is_empty() && Key::parse(dir_part).is_err() {
        return Ok(builder.finish());
    }
    // Nothing under the internal directory is a key, at any depth.
    if hide_internal && dir_part.split('/').next() == Some(INTERNAL_DIR) {
        return Ok(builder.finish());
    }
    let start = root.join(dir_part);
    let relative_start = if dir_part.is_empty() {
        String::new()
    } else {
        format!("{dir_part}/")
    };
    if delimiter == Some("/") {
        // One directory read: files are keys, non-empty directories prefixes.
        for (name, is_dir) in read_names(&start)? {
            let key = format!("{relative_start}{name}");
            if !key.starts_with(prefix)
                || (hide_internal && dir_part.is_empty() && name == INTERNAL_DIR)
            {
                continue;
            }
            if !is_dir {
                builder.push(&key);
            } else if has_entries(&start.join(&name)) {
                builder.push(&format!("{key}/"));
            }
        }
    } else {
        let mut pending = vec![(start, relative_start)];
        while let Some((dir, relative)) = pending.pop() {
            for (name, is_dir) in read_names(&dir)? {
                if hide_internal && relative.is_empty() && name == INTERNAL_DIR {
                    continue;
                }
                let key = format!("{relative}{name}");
                if is_dir {
                    // Descend only where keys under the prefix can be.
                    let sub = format!("{key}/");
                    if sub.starts_with(prefix) || prefix.starts_with(&sub) {
                        pending.push((dir.join(&name), sub));
                    }
                } else {
                    builder.push(&key);
                }
            }
        }
    }
    Ok(builder.finish())
}

/// Entries of a directory that can be keys: regular files and
/// directories with UTF-8 names free of control characters.
fn read_names(dir: &Path) -> io::Result<Vec<(String, bool)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        let kind = entry.file_type()?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.chars().any(|c| c.is_ascii_control()) || !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        names.push((name, kind.is_dir()));
    }
    Ok(names)
}

fn has_entries(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

fn remove_stale_temp_files(temp_dir: &Path) {
    let Ok(entries) = fs::read_dir(temp_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > STALE_TEMP_AGE));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A write whose body is complete in a temporary file: stamp, sync,
/// then under the key's lock check the condition and rename into place.
struct Commit {
    /// The key, for the messages.
    key: String,
    target: PathBuf,
    lock: PathBuf,
    root: PathBuf,
    sync: bool,
    condition: Condition,
}

impl Commit {
    fn run(self, temp: TempPath, file: File) -> Result<Version> {
        let failed = |e| self.failed(e);
        file.set_modified(SystemTime::now()).map_err(failed)?;
        if self.sync {
            file.sync_data().map_err(failed)?;
        }
        let version = version_of(&file.metadata().map_err(failed)?);
        drop(file);
        let _lock = KeyLocks::hold(&self.lock).map_err(failed)?;
        check_condition(
            &current_version(&self.target).map_err(failed)?,
            &self.condition,
        )?;
        install(&temp.path, &self.target, &self.root).map_err(failed)?;
        temp.persisted();
        if self.sync {
            sync_parent(&self.target).map_err(failed)?;
        }
        Ok(version)
    }

    /// What an I/O error of this write means.
    fn failed(&self, e: io::Error) -> Error {
        write_error(e, &self.key)
    }
}

/// A temporary file's name, removed on drop unless it was renamed into
/// place.
struct TempPath {
    path: PathBuf,
    persisted: bool,
}

impl TempPath {
    /// A new, empty temporary file and its name.
    fn create(dir: &Path) -> io::Result<(TempPath, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "{}-{}-{nanos}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((
            TempPath {
                path,
                persisted: false,
            },
            file,
        ))
    }

    fn persisted(mut self) {
        self.persisted = true;
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Lock stripes shared by every process on the directory: a key hashes
/// (with a fixed function, the same in every process) to one of
/// [`LOCK_STRIPES`] lock files. Each holder opens the file itself, so
/// `flock` excludes other threads of this process as well as other
/// processes; closing the file releases the lock.
struct KeyLocks {
    dir: PathBuf,
}

impl KeyLocks {
    fn path(&self, key: &Key) -> PathBuf {
        self.dir
            .join(format!("{:02x}.lock", stripe_of(key.as_str())))
    }

    /// Blocks until the stripe is ours; it is held until the file drops.
    fn hold(path: &Path) -> io::Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.lock()?;
        Ok(file)
    }
}

/// FNV-1a: fixed across processes and builds, unlike the std hasher.
fn stripe_of(key: &str) -> usize {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash as usize % LOCK_STRIPES
}

/// Turns an I/O error of `doing` into a store error, keeping it as the
/// source.
fn io_error(e: io::Error, doing: &str) -> Error {
    match e.kind() {
        io::ErrorKind::InvalidFilename => {
            Error::bad_request("a key segment is longer than the file system allows")
        }
        io::ErrorKind::PermissionDenied => {
            Error::new(ErrorKind::PermissionDenied, doing).with_source(e)
        }
        _ => Error::new(ErrorKind::Internal, format!("fs store, {doing}")).with_source(e),
    }
}

fn not_found_or(e: io::Error, key: &str, doing: &str) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => {
            Error::key_not_found(key)
        }
        _ => io_error(e, doing),
    }
}

/// A name that is a file where a directory is needed, or the reverse,
/// cannot be stored: that is a conflict with the existing key.
fn write_error(e: io::Error, key: &str) -> Error {
    match e.kind() {
        io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => Error::new(
            ErrorKind::KeyConflict,
            format!(
                "'{key}' cannot be stored: a parent of it is a key (the fs store keeps files, \
             so 'a' and 'a/b' cannot both exist)"
            ),
        ),
        io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty => Error::new(
            ErrorKind::KeyConflict,
            format!(
                "'{key}' cannot be stored: keys exist under '{key}/' (the fs store keeps files, \
             so 'a' and 'a/b' cannot both exist)"
            ),
        ),
        _ => io_error(e, "writing"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::error::kind_of;

    fn key(k: &str) -> Key {
        Key::parse(k).unwrap()
    }

    fn open(dir: &Path, prefix: &str) -> FsStore {
        FsStore::open(FsOptions {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            sync: false,
        })
        .unwrap()
    }

    fn full(data: &'static str) -> Body {
        Body::Full(Bytes::from_static(data.as_bytes()))
    }

    #[tokio::test]
    async fn objects_are_plain_files_under_the_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "tenant/a");
        store
            .put(&key("x/y.json"), full("{}"), Condition::None)
            .await
            .unwrap();
        assert_eq!(
            fs::read(dir.path().join("tenant/a/x/y.json")).unwrap(),
            b"{}"
        );
        assert_eq!(
            fs::read_dir(dir.path().join(".state-proxy/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn version_survives_the_rename_and_changes_on_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        let v1 = store
            .put(&key("a"), full("same"), Condition::None)
            .await
            .unwrap();
        assert_eq!(store.head(&key("a")).await.unwrap().version, v1);
        assert_eq!(store.get(&key("a")).await.unwrap().meta.version, v1);
        let v2 = store
            .put(&key("a"), full("same"), Condition::None)
            .await
            .unwrap();
        assert_ne!(v1, v2);
    }

    #[tokio::test]
    async fn file_and_directory_names_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        store
            .put(&key("a"), full("1"), Condition::None)
            .await
            .unwrap();
        let below = store.put(&key("a/b"), full("2"), Condition::None).await;
        assert_eq!(kind_of(&below), Some(ErrorKind::KeyConflict), "{below:?}");
        store
            .put(&key("c/d"), full("3"), Condition::None)
            .await
            .unwrap();
        let above = store.put(&key("c"), full("4"), Condition::None).await;
        assert_eq!(kind_of(&above), Some(ErrorKind::KeyConflict), "{above:?}");
        assert_eq!(
            kind_of(&store.get(&key("a/b")).await),
            Some(ErrorKind::KeyNotFound)
        );
        assert_eq!(
            kind_of(&store.get(&key("c")).await),
            Some(ErrorKind::KeyNotFound)
        );
        // Nothing is left behind by the refused writes.
        assert_eq!(
            fs::read_dir(dir.path().join(".state-proxy/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[tokio::test]
    async fn too_long_segment_is_a_bad_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        let long = "n".repeat(300);
        for name in [long.clone(), format!("d/{long}"), format!("d/e/{long}/x")] {
            let result = store.put(&key(&name), full("x"), Condition::None).await;
            assert_eq!(kind_of(&result), Some(ErrorKind::BadRequest), "{result:?}");
        }
        // A refused write leaves no trace: no directory, and the name is free.
        assert!(!dir.path().join("d").exists());
        let listing = store.list("", Some("")).await.unwrap();
        assert!(listing.keys.is_empty() && listing.prefixes.is_empty());
        store
            .put(&key("d"), full("1"), Condition::None)
            .await
            .unwrap();
        // A directory with other keys stays.
        store
            .put(&key("e/kept"), full("1"), Condition::None)
            .await
            .unwrap();
        let refused = store
            .put(&key(&format!("e/{long}")), full("x"), Condition::None)
            .await;
        assert_eq!(kind_of(&refused), Some(ErrorKind::BadRequest));
        assert_eq!(store.list("e/", Some("/")).await.unwrap().keys, ["e/kept"]);
    }

    #[tokio::test]
    async fn internal_directory_is_neither_listed_nor_writable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        store
            .put(&key("a"), full("1"), Condition::None)
            .await
            .unwrap();
        let reserved = store
            .put(&key(".state-proxy/x"), full("1"), Condition::None)
            .await;
        assert_eq!(kind_of(&reserved), Some(ErrorKind::BadRequest));
        assert_eq!(store.list("", Some("/")).await.unwrap().keys, ["a"]);
        assert!(store.list("", Some("/")).await.unwrap().prefixes.is_empty());
        assert_eq!(store.list("", None).await.unwrap().keys, ["a"]);
        // Not even when asked for by name (the lock files are there).
        assert!(dir.path().join(".state-proxy/locks").exists());
        for (prefix, delimiter) in [
            (".state-proxy/", None),
            (".state-proxy/", Some("/")),
            (".state-proxy/locks/", None),
            (".state-proxy/tmp/x", Some("/")),
        ] {
            let listing = store.list(prefix, delimiter).await.unwrap();
            assert!(
                listing.keys.is_empty() && listing.prefixes.is_empty(),
                "{prefix} {delimiter:?}: {listing:?}"
            );
        }
        // With a prefix the name is an ordinary key.
        let prefixed = open(dir.path(), "p");
        prefixed
            .put(&key(".state-proxy/x"), full("1"), Condition::None)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn delete_prunes_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        store
            .put(&key("a/b/c"), full("1"), Condition::None)
            .await
            .unwrap();
        store
            .put(&key("a/d"), full("1"), Condition::None)
            .await
            .unwrap();
        store.delete(&key("a/b/c"), Condition::None).await.unwrap();
        assert!(!dir.path().join("a/b").exists());
        assert_eq!(store.list("", Some("/")).await.unwrap().prefixes, ["a/"]);
        store.delete(&key("a/d"), Condition::None).await.unwrap();
        assert!(!dir.path().join("a").exists());
        assert!(store.list("", Some("/")).await.unwrap().prefixes.is_empty());
    }

    #[tokio::test]
    async fn listing_by_directory_and_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        for k in ["a/1", "a/2", "a/b/3", "ab", "b", "a/c-1", "a/c-2"] {
            store
                .put(&key(k), full("x"), Condition::None)
                .await
                .unwrap();
        }
        let top = store.list("", Some("/")).await.unwrap();
        assert_eq!(
            (top.keys, top.prefixes),
            (vec!["ab".into(), "b".into()], vec!["a/".to_owned()])
        );
        let partial = store.list("a", Some("/")).await.unwrap();
        assert_eq!(
            (partial.keys, partial.prefixes),
            (vec!["ab".to_owned()], vec!["a/".to_owned()])
        );
        let inner = store.list("a/", Some("/")).await.unwrap();
        assert_eq!(inner.keys, ["a/1", "a/2", "a/c-1", "a/c-2"]);
        assert_eq!(inner.prefixes, ["a/b/"]);
        let recursive = store.list("a/", None).await.unwrap();
        assert_eq!(recursive.keys, ["a/1", "a/2", "a/b/3", "a/c-1", "a/c-2"]);
        let dashed = store.list("a/c", Some("-")).await.unwrap();
        assert_eq!(dashed.prefixes, ["a/c-"]);
        assert!(store.list("../", Some("/")).await.unwrap().keys.is_empty());
        assert!(
            store
                .list("nope/", Some("/"))
                .await
                .unwrap()
                .keys
                .is_empty()
        );
    }

    #[tokio::test]
    async fn conditional_writes_are_atomic_across_store_instances() {
        // Two instances on one directory stand for two processes: each has
        // its own in-process mutexes, so only flock keeps them apart.
        let dir = tempfile::tempdir().unwrap();
        let stores = [
            Arc::new(open(dir.path(), "")),
            Arc::new(open(dir.path(), "")),
        ];
        let mut winners = 0;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let store = Arc::clone(&stores[i % 2]);
                tokio::spawn(async move {
                    store
                        .put(&key("once"), full("x"), Condition::IfAbsent)
                        .await
                })
            })
            .collect();
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(e) if e.kind() == ErrorKind::PreconditionFailed => {}
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners, 1);
    }

    #[tokio::test]
    async fn large_files_stream_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "");
        let data = Bytes::from(vec![7u8; (WHOLE_READ_MAX as usize) * 3 + 5]);
        store
            .put(&key("big"), Body::Full(data.clone()), Condition::None)
            .await
            .unwrap();
        let object = store.get(&key("big")).await.unwrap();
        let Body::Stream { stream, size } = object.body else {
            panic!("large files are streamed");
        };
        assert_eq!(size, Some(data.len() as u64));
        let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
        assert_eq!(chunks.concat(), data);
    }

    #[test]
    fn stripes_are_stable() {
        // The mapping is shared with other processes: it must not change.
        assert_eq!(stripe_of(""), 0x811c_9dc5 % LOCK_STRIPES);
        assert_eq!(stripe_of("a"), 0xe40c_292c % LOCK_STRIPES);
    }
}

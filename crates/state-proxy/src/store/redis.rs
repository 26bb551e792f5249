//! The `redis` store: one plain Redis string per key, under
//! `STATE_PREFIX:key` (the original connector's layout, so existing data
//! stays readable), just `key` with no prefix.
//!
//! - The version of a value is the SHA-1 of its bytes (hex, as Redis's own
//!   `redis.sha1hex` computes it). It changes whenever the value changes;
//!   writing back identical bytes keeps it, which is harmless for
//!   compare-and-swap: the value is then exactly what the writer read.
//! - Conditional writes and deletes are one Lua script each (atomic in
//!   Redis, safe on the shared multiplexed connection, unlike
//!   WATCH/MULTI); create-if-absent is `SET NX`.
//! - Every write keeps an existing TTL (`KEEPTTL`); the `ttl` attribute
//!   sets or removes it.
//! - One connection manager, connected lazily and reconnected on demand:
//!   the proxy starts without Redis and recovers when Redis comes back.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use parking_lot::RwLock;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, ErrorKind as RedisErrorKind, RedisError, Script, ServerErrorKind};

use super::listing::ListingBuilder;
use super::{
    AttrSpec, Body, Condition, Listing, Object, ObjectMeta, Store, StoreInfo, Version, WriteMemory,
};
use crate::error::{Error, ErrorKind, Result};
use crate::key::Key;

static INFO: StoreInfo = StoreInfo {
    name: "redis",
    attributes: &[AttrSpec {
        name: "ttl",
        settable: true,
    }],
    conditional_delete: true,
    nested_keys: true,
    ttl: true,
    streamed_write: WriteMemory::Whole,
    whole_reads: true,
};

/// Values at least this large are hashed off the async threads.
const HASH_INLINE_MAX: usize = 256 * 1024;
/// Keys SCAN examines per round trip (a hint to Redis).
const SCAN_COUNT: usize = 1000;

/// Size and digest of a value, computed in Redis without sending it.
static STAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local value = redis.call('GET', KEYS[1])
          if not value then return false end
          return {string.len(value), redis.sha1hex(value)}",
    )
});

/// Writes ARGV[1] only if the current value's digest is ARGV[2].
/// Answers 1 when written, 0 when the key is missing, -1 on a mismatch.
static SET_IF_MATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local current = redis.call('GET', KEYS[1])
          if not current then return 0 end
          if redis.sha1hex(current) ~= ARGV[2] then return -1 end
          redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
          return 1",
    )
});

/// Deletes only if the current value's digest is ARGV[1]; answers as
/// [`SET_IF_MATCH`].
static DELETE_IF_MATCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local current = redis.call('GET', KEYS[1])
          if not current then return 0 end
          if redis.sha1hex(current) ~= ARGV[1] then return -1 end
          redis.call('DEL', KEYS[1])
          return 1",
    )
});

/// Options of the `redis` store.
#[derive(Clone, Debug)]
pub struct RedisOptions {
    /// `REDIS_URL`.
    pub url: String,
    /// `STATE_PREFIX`.
    pub prefix: String,
    /// Longest a command may take (`STATE_BACKEND_TIMEOUT_SECS`).
    pub timeout: Duration,
}

pub struct RedisStore {
    client: redis::Client,
    /// Replaced when Redis refuses our credentials: the manager caches
    /// such an error for good instead of reconnecting.
    connection: RwLock<ConnectionManager>,
    config: redis::aio::ConnectionManagerConfig,
    names: RedisNames,
    timeout: Duration,
}

impl RedisStore {
    /// Parses the URL and prepares a lazy connection: no network traffic
    /// until the first request. Must run inside the Tokio runtime.
    pub fn open(options: RedisOptions) -> Result<RedisStore, String> {
        let client = redis::Client::open(options.url.as_str())
            .map_err(|e| format!("REDIS_URL is not a valid Redis URL: {e}"))?;
        // Fail fast while Redis is down (503 at once, not after a long
        // retry loop); the next command tries to connect again.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout.min(Duration::from_secs(2))))
            .set_response_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| format!("cannot prepare the Redis connection: {e}"))?;
        Ok(RedisStore {
            client,
            connection: RwLock::new(connection),
            config,
            names: RedisNames::new(&options.prefix),
            timeout: options.timeout,
        })
    }

    /// Runs one command (or script) with the hard time limit, mapping
    /// errors; after an authentication failure the next call starts from a
    /// fresh connection.
    async fn run<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection.read().clone();
        match tokio::time::timeout(self.timeout, call(connection)).await {
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("Redis did not answer within {:?}", self.timeout),
            )),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.kind() == RedisErrorKind::AuthenticationFailed {
                    self.reconnect();
                }
                Err(map_error(&e))
            }
        }
    }

    fn reconnect(&self) {
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(fresh) => *self.connection.write() = fresh,
            Err(e) => tracing::warn!(error = %e, "cannot prepare a new Redis connection"),
        }
    }
}

/// `STATE_PREFIX:key`, or `key` without a prefix.
#[derive(Clone, Debug)]
struct RedisNames {
    prefix: String,
}

impl RedisNames {
    fn new(prefix: &str) -> Self {
        RedisNames {
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}:")
            },
        }
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn key<'n>(&self, name: &'n str) -> Option<&'n str> {
        name.strip_prefix(&self.prefix)
    }

    /// The SCAN pattern of every name under a list prefix.
    fn pattern(&self, list_prefix: &str) -> String {
        format!("{}*", glob_escape(&self.name(list_prefix)))
    }
}

/// Escapes what SCAN MATCH treats as glob syntax, so a prefix matches only
/// itself. `]`, `^` and `-` only matter inside `[...]`, but escaping any
/// character is harmless.
fn glob_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The version of a value: SHA-1 in hex, as `redis.sha1hex` computes it.
async fn digest(value: Bytes) -> Result<Version> {
    let small = value.len() < HASH_INLINE_MAX;
    let hash = move || Version::new(sha1_smol::Sha1::from(&value[..]).digest().to_string());
    if small {
        Ok(hash())
    } else {
        tokio::task::spawn_blocking(hash)
            .await
            .map_err(|e| Error::internal(format!("hashing a value: {e}")))
    }
}

async fn whole(body: Body) -> Result<Bytes> {
    match body {
        Body::Full(bytes) => Ok(bytes),
        Body::Stream { stream, .. } => {
            let chunks: Vec<Bytes> = stream.try_collect().await?;
            Ok(Bytes::from(chunks.concat()))
        }
    }
}

/// What a conditional script answered.
fn script_outcome(answer: i64, key: &Key) -> Result<()> {
    match answer {
        1 => Ok(()),
        0 => Err(Error::new(
            ErrorKind::PreconditionFailed,
            format!("'{key}' does not exist"),
        )),
        _ => Err(Error::new(
            ErrorKind::PreconditionFailed,
            format!("'{key}' does not have the expected version"),
        )),
    }
}

fn map_error(e: &RedisError) -> Error {
    if e.is_timeout() {
        return Error::new(ErrorKind::Timeout, format!("Redis timed out: {e}"));
    }
    if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        return Error::new(ErrorKind::Unavailable, format!("Redis is unreachable: {e}"));
    }
    match e.kind() {
        RedisErrorKind::AuthenticationFailed => Error::new(
            ErrorKind::PermissionDenied,
            format!("Redis refused the credentials: {e}"),
        ),
        RedisErrorKind::Server(ServerErrorKind::NoPerm) => Error::new(
            ErrorKind::PermissionDenied,
            format!("Redis denied the command: {e}"),
        ),
        RedisErrorKind::Server(
            ServerErrorKind::BusyLoading | ServerErrorKind::ReadOnly | ServerErrorKind::TryAgain,
        ) => Error::new(
            ErrorKind::Unavailable,
            format!("Redis cannot serve writes now: {e}"),
        ),
        _ if e.code() == Some("WRONGTYPE") => Error::new(
            ErrorKind::KeyConflict,
            format!(
                "the key holds a Redis value that is not a string, which this store neither reads \
             nor overwrites: {e}"
            ),
        ),
        _ => Error::internal(format!("Redis error: {e}")),
    }
}

#[async_trait]
impl Store for RedisStore {
    fn info(&self) -> &StoreInfo {
        &INFO
    }

    async fn get(&self, key: &Key) -> Result<Object> {
        let name = self.names.name(key.as_str());
        let value: Option<Vec<u8>> = self
            .run(|mut connection| async move { connection.get(name).await })
            .await?;
        let value = Bytes::from(value.ok_or_else(|| Error::key_not_found(key))?);
        let version = digest(value.clone()).await?;
        Ok(Object {
            meta: ObjectMeta {
                size: value.len() as u64,
                version,
            },
            body: Body::Full(value),
        })
    }

    async fn head(&self, key: &Key) -> Result<ObjectMeta> {
        let name = self.names.name(key.as_str());
        let stat: Option<(u64, String)> = self
            .run(|mut connection| async move { STAT.key(name).invoke_async(&mut connection).await })
            .await?;
        let (size, digest) = stat.ok_or_else(|| Error::key_not_found(key))?;
        Ok(ObjectMeta {
            size,
            version: Version::new(digest),
        })
    }

    async fn put(&self, key: &Key, body: Body, condition: Condition) -> Result<Version> {
        let value = whole(body).await?;
        let version = digest(value.clone()).await?;
        let name = self.names.name(key.as_str());
        match condition {
            Condition::None => {
                let value = value.clone();
                self.run(|mut connection| async move {
                    redis::cmd("SET")
                        .arg(name)
                        .arg(&value[..])
                        .arg("KEEPTTL")
                        .query_async::<()>(&mut connection)
                        .await
                })
                .await?;
            }
            Condition::IfAbsent => {
                let written: Option<String> = self
                    .run(|mut connection| async move {
                        redis::cmd("SET")
                            .arg(name)
                            .arg(&value[..])
                            .arg("NX")
                            .query_async(&mut connection)
                            .await
                    })
                    .await?;
                if written.is_none() {
                    return Err(Error::new(
                        ErrorKind::PreconditionFailed,
                        format!("'{key}' already exists"),
                    ));
                }
            }
            Condition::IfMatch(expected) => {
                let answer: i64 = self
                    .run(|mut connection| async move {
                        SET_IF_MATCH
                            .key(name)
                            .arg(&value[..])
                            .arg(expected.as_str())
                            .invoke_async(&mut connection)
                            .await
                    })
                    .await?;
                script_outcome(answer, key)?;
            }
        }
        Ok(version)
    }

    async fn delete(&self, key: &Key, condition: Condition) -> Result<()> {
        let name = self.names.name(key.as_str());
        match condition {
            Condition::IfMatch(expected) => {
                let answer: i64 = self
                    .run(|mut connection| async move {
                        DELETE_IF_MATCH
                            .key(name)
                            .arg(expected.as_str())
                            .invoke_async(&mut connection)
                            .await
                    })
                    .await?;
                script_outcome(answer, key)
            }
            _ => {
                let removed: u64 = self
                    .run(|mut connection| async move { connection.del(name).await })
                    .await?;
                if removed == 0 {
                    Err(Error::key_not_found(key))
                } else {
                    Ok(())
                }
            }
        }
    }

    async fn list(&self, prefix: &str, delimiter: Option<&str>) -> Result<Listing> {
        let pattern = self.names.pattern(prefix);
        let names: Vec<Vec<u8>> = self
            .run(|mut connection| async move {
                let options = redis::ScanOptions::default()
                    .with_pattern(pattern)
                    .with_count(SCAN_COUNT);
                let scan = connection.scan_options::<Vec<u8>>(options).await?;
                scan.collect::<Vec<_>>().await.into_iter().collect()
            })
            .await?;
        let mut builder = ListingBuilder::new(prefix, delimiter);
        for name in &names {
            // Names that are not UTF-8 cannot be keys of this proxy.
            if let Some(key) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| self.names.key(n))
            {
                builder.push(key);
            }
        }
        Ok(builder.finish())
    }

    async fn get_attr(&self, key: &Key, name: &str) -> Result<String> {
        if name != "ttl" {
            return Err(Error::unsupported_attribute(name));
        }
        let redis_name = self.names.name(key.as_str());
        let ttl: i64 = self
            .run(|mut connection| async move { connection.ttl(redis_name).await })
            .await?;
        match ttl {
            -2 => Err(Error::key_not_found(key)),
            seconds => Ok(seconds.to_string()),
        }
    }

    async fn set_attr(&self, key: &Key, name: &str, value: &str) -> Result<()> {
        if name != "ttl" {
            return Err(Error::unsupported_attribute(name));
        }
        let seconds = parse_ttl(value)?;
        let redis_name = self.names.name(key.as_str());
        // EXPIRE and PERSIST answer 0 both for a missing key and for
        // "nothing to do"; EXISTS in the same transaction tells them apart.
        let (exists, _): (bool, i64) = self
            .run(|mut connection| async move {
                let mut pipe = redis::pipe();
                pipe.atomic().exists(&redis_name);
                match seconds {
                    Some(seconds) => pipe.expire(&redis_name, seconds),
                    None => pipe.persist(&redis_name),
                };
                pipe.query_async(&mut connection).await
            })
            .await?;
        if exists {
            Ok(())
        } else {
            Err(Error::key_not_found(key))
        }
    }

    async fn probe(&self) -> Result<()> {
        self.run(|mut connection| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(drop)
    }
}

/// A TTL to set: a positive number of seconds sets it, `0` or `-1`
/// removes it (`None`).
fn parse_ttl(value: &str) -> Result<Option<i64>> {
    match value.trim().parse::<i64>() {
        Ok(seconds) if seconds > 0 => Ok(Some(seconds)),
        Ok(0 | -1) => Ok(None),
        _ => Err(Error::bad_request(format!(
            "ttl must be a whole number of seconds: positive to set it, 0 or -1 to remove it; got {value:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    #[test]
    fn names_follow_the_compat_layout() {
        let names = RedisNames::new("actor-a");
        assert_eq!(names.name("results/1.json"), "actor-a:results/1.json");
        assert_eq!(names.key("actor-a:results/1.json"), Some("results/1.json"));
        assert_eq!(names.key("actor-b:results/1.json"), None);
        let bare = RedisNames::new("");
        assert_eq!(bare.name("k"), "k");
        assert_eq!(bare.key("anything"), Some("anything"));
    }

    #[test]
    fn scan_patterns_match_only_the_prefix() {
        let names = RedisNames::new("p");
        assert_eq!(names.pattern("a/"), "p:a/*");
        assert_eq!(names.pattern("a*b?c[d]e\\f"), "p:a\\*b\\?c\\[d\\]e\\\\f*");
        assert_eq!(glob_escape("x-y^z"), "x\\-y\\^z");
        assert_eq!(RedisNames::new("").pattern(""), "*");
    }

    #[test]
    fn digests_are_redis_sha1hex() {
        // redis.sha1hex("abc") in Redis 7.0.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let version = rt.block_on(digest(Bytes::from_static(b"abc"))).unwrap();
        assert_eq!(version.as_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let large = Bytes::from(vec![0u8; HASH_INLINE_MAX + 1]);
        let rt = tokio::runtime::Builder::new_multi_thread().build().unwrap();
        let expected = sha1_smol::Sha1::from(&large[..]).digest().to_string();
        assert_eq!(rt.block_on(digest(large)).unwrap().as_str(), expected);
    }

    #[test]
    fn ttl_values() {
        assert_eq!(parse_ttl("60").unwrap(), Some(60));
        assert_eq!(parse_ttl("0").unwrap(), None);
        assert_eq!(parse_ttl("-1").unwrap(), None);
        for bad in ["-2", "1.5", "soon", ""] {
            assert_eq!(
                kind_of(&parse_ttl(bad)),
                Some(ErrorKind::BadRequest),
                "{bad}"
            );
        }
    }

    /// A fake Redis on 127.0.0.1: answers each command (a list of
    /// arguments) with the raw RESP `reply` gives, and records them.
    struct FakeRedis {
        url: String,
        commands: std::sync::Arc<parking_lot::Mutex<Vec<Vec<String>>>>,
    }

    impl FakeRedis {
        async fn start(reply: fn(&[String]) -> Option<String>) -> FakeRedis {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("redis://{}/0", listener.local_addr().unwrap());
            let commands = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
            let recorded = std::sync::Arc::clone(&commands);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let recorded = std::sync::Arc::clone(&recorded);
                    tokio::spawn(async move {
                        let (read, mut write) = stream.into_split();
                        let mut read = BufReader::new(read);
                        let mut line = String::new();
                        loop {
                            // *N, then N times $len + bytes.
                            line.clear();
                            if read.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let count: usize = line.trim()[1..].parse().unwrap();
                            let mut command = Vec::new();
                            for _ in 0..count {
                                line.clear();
                                read.read_line(&mut line).await.unwrap();
                                let length: usize = line.trim()[1..].parse().unwrap();
                                let mut data = vec![0; length + 2];
                                read.read_exact(&mut data).await.unwrap();
                                data.truncate(length);
                                command.push(String::from_utf8_lossy(&data).into_owned());
                            }
                            recorded.lock().push(command.clone());
                            // No reply: the fake hangs, as a stuck server would.
                            if let Some(answer) = reply(&command) {
                                write.write_all(answer.as_bytes()).await.unwrap();
                            }
                        }
                    });
                }
            });
            FakeRedis { url, commands }
        }

        fn store(&self, timeout: Duration) -> RedisStore {
            RedisStore::open(RedisOptions {
                url: self.url.clone(),
                prefix: "p".into(),
                timeout,
            })
            .unwrap()
        }
    }

    /// Handshake commands the client may send on connecting.
    fn handshake(command: &[String]) -> Option<String> {
        match command[0].to_uppercase().as_str() {
            "CLIENT" | "SELECT" => Some("+OK\r\n".into()),
            "HELLO" => Some("-ERR unknown command\r\n".into()),
            _ => None,
        }
    }

    fn bulk_array(items: &[&str]) -> String {
        let mut out = format!("*{}\r\n", items.len());
        for item in items {
            out.push_str(&format!("${}\r\n{item}\r\n", item.len()));
        }
        out
    }

    #[tokio::test]
    async fn listing_follows_every_scan_cursor() {
        let fake = FakeRedis::start(|command| {
            handshake(command).or_else(|| match command[1].as_str() {
                "0" => Some(format!(
                    "*2\r\n$2\r\n17\r\n{}",
                    bulk_array(&["p:a/1", "p:a/b/2"])
                )),
                "17" => Some(format!(
                    "*2\r\n$1\r\n0\r\n{}",
                    bulk_array(&["p:a/0", "p:a/1"])
                )),
                _ => Some("-ERR unexpected cursor\r\n".into()),
            })
        })
        .await;
        let store = fake.store(Duration::from_secs(5));
        let listing = store.list("a/", Some("/")).await.unwrap();
        assert_eq!(listing.keys, ["a/0", "a/1"]);
        assert_eq!(listing.prefixes, ["a/b/"]);
        let scans: Vec<Vec<String>> = fake
            .commands
            .lock()
            .iter()
            .filter(|c| c[0].eq_ignore_ascii_case("SCAN"))
            .cloned()
            .collect();
        assert_eq!(scans.len(), 2, "{scans:?}");
        assert!(
            scans[0]
                .windows(2)
                .any(|w| w[0].eq_ignore_ascii_case("MATCH") && w[1] == "p:a/*")
        );
    }

    #[tokio::test]
    async fn a_hung_redis_answers_timeout() {
        let fake = FakeRedis::start(handshake).await;
        let store = fake.store(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let result = store.get(&Key::parse("k").unwrap()).await;
        assert_eq!(kind_of(&result), Some(ErrorKind::Timeout), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_absent_redis_answers_unavailable() {
        // A port nobody listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = RedisStore::open(RedisOptions {
            url: format!("redis://127.0.0.1:{port}/0"),
            prefix: String::new(),
            timeout: Duration::from_secs(5),
        })
        .unwrap();
        let result = store.get(&Key::parse("k").unwrap()).await;
        assert_eq!(kind_of(&result), Some(ErrorKind::Unavailable), "{result:?}");
        assert_eq!(kind_of(&store.probe().await), Some(ErrorKind::Unavailable));
    }

    #[tokio::test]
    async fn server_errors_are_mapped() {
        let fake = FakeRedis::start(|command| {
            handshake(command).or_else(|| match command[0].to_uppercase().as_str() {
                "GET" => Some(
                    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n".into(),
                ),
                "DEL" => Some("-NOPERM this user has no permissions\r\n".into()),
                "SET" => Some("-READONLY You can't write against a read only replica.\r\n".into()),
                _ => None,
            })
        })
        .await;
        let store = fake.store(Duration::from_secs(5));
        let key = Key::parse("k").unwrap();
        assert_eq!(
            kind_of(&store.get(&key).await),
            Some(ErrorKind::KeyConflict)
        );
        assert_eq!(
            kind_of(&store.delete(&key, Condition::None).await),
            Some(ErrorKind::PermissionDenied)
        );
        let body = Body::Full(Bytes::from_static(b"v"));
        assert_eq!(
            kind_of(&store.put(&key, body, Condition::None).await),
            Some(ErrorKind::Unavailable)
        );
    }

    #[tokio::test]
    async fn writes_keep_the_ttl_and_creates_use_nx() {
        let fake = FakeRedis::start(|command| {
            handshake(command).or_else(|| match command[0].to_uppercase().as_str() {
                "SET" if command.iter().any(|a| a == "NX") => Some("$-1\r\n".into()),
                "SET" => Some("+OK\r\n".into()),
                _ => None,
            })
        })
        .await;
        let store = fake.store(Duration::from_secs(5));
        let key = Key::parse("k").unwrap();
        let version = store
            .put(
                &key,
                Body::Full(Bytes::from_static(b"abc")),
                Condition::None,
            )
            .await
            .unwrap();
        assert_eq!(version.as_str(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let create = store
            .put(
                &key,
                Body::Full(Bytes::from_static(b"abc")),
                Condition::IfAbsent,
            )
            .await;
        assert_eq!(
            kind_of(&create),
            Some(ErrorKind::PreconditionFailed),
            "{create:?}"
        );
        let sets: Vec<Vec<String>> = fake
            .commands
            .lock()
            .iter()
            .filter(|c| c[0].eq_ignore_ascii_case("SET"))
            .cloned()
            .collect();
        assert_eq!(sets[0], ["SET", "p:k", "abc", "KEEPTTL"]);
        assert_eq!(sets[1], ["SET", "p:k", "abc", "NX"]);
    }

    #[test]
    fn script_answers() {
        let key = Key::parse("k").unwrap();
        assert!(script_outcome(1, &key).is_ok());
        assert_eq!(
            kind_of(&script_outcome(0, &key)),
            Some(ErrorKind::PreconditionFailed)
        );
        assert_eq!(
            kind_of(&script_outcome(-1, &key)),
            Some(ErrorKind::PreconditionFailed)
        );
    }
}

//! The connections of the socket server and their limits.
//!
//! Every accepted connection is registered with what the limits need to
//! know of it: whether a request is being served, since when it has been
//! idle, since when it has been sending a request head, since when an
//! answer has been waiting for the client to read it. From that:
//!
//! - a connection idle (between requests) longer than the keep-alive idle
//!   timeout, one whose request head takes longer than the header timeout,
//!   and one whose answer nobody reads for the write timeout are closed,
//!   by one watcher task for all connections ([`Connections::watch`]);
//! - at the connection cap, a new connection sheds the connection idle the
//!   longest (a request being served is never cut off for a newcomer); if
//!   every connection is serving a request, the newcomer is closed;
//! - at shutdown, idle and half-open connections are closed at once and
//!   the others after their answer.
//!
//! A connection's task learns what it is asked ([`Connection::command`])
//! from an atomic and a waker, checked as it is polled: no timer and no
//! `select!` of its own, which would cost every request something.
//!
//! Request bodies keep their own pace (`pace`).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;

use super::body::ResponseBody;
use crate::error::Error;

/// The timeouts and the cap; a zero timeout is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request to the end of its head.
    pub header_timeout: Duration,
    /// Between requests of a kept-alive connection (and from accepting a
    /// connection to its first byte).
    pub idle_timeout: Duration,
    /// How long an answer may wait for the client to read it.
    pub write_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// How soon a connection that is within its limits is looked at
    /// again: half of the shortest limit that is on.
    fn recheck(&self) -> Duration {
        [self.header_timeout, self.write_timeout, self.idle_timeout]
            .into_iter()
            .filter(|d| !d.is_zero())
            .min()
            .unwrap_or(Duration::from_secs(3600))
            / 2
    }
}

/// What the server asked a connection to do.
const RUN: u8 = 0;
/// Close now (shed for a newcomer).
const CLOSE: u8 = 1;
/// Shutdown: close now if idle, else after the answer in progress.
const DRAIN: u8 = 2;

/// The registry of live connections.
pub struct Connections {
    limits: ConnectionLimits,
    epoch: Epoch,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    count: watch::Sender<usize>,
}

impl Connections {
    pub fn new(limits: ConnectionLimits) -> Connections {
        Connections {
            limits,
            epoch: Epoch::now(),
            next_id: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
            count: watch::Sender::new(0),
        }
    }

    /// Registers a new connection; at the cap, sheds the connection idle
    /// the longest first. `None` when every connection is serving a
    /// request: the newcomer is to be closed.
    pub fn admit(&self) -> Option<Arc<Connection>> {
        let mut live = self.live.lock();
        if live.len() >= self.limits.max_connections {
            let longest_idle = live
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0)
                .filter(|c| c.command.load(Ordering::Acquire) == RUN)
                // Ids grow with age: among connections idle since the same
                // tick of the coarse clock, the older goes first.
                .min_by_key(|c| (c.idle_since.load(Ordering::Relaxed), c.id));
            match longest_idle {
                Some(shed) => {
                    tracing::debug!(
                        connections = live.len(),
                        "connection cap reached: closing the connection idle the longest"
                    );
                    shed.tell(CLOSE);
                }
                None => {
                    tracing::warn!(
                        connections = live.len(),
                        "connection cap reached and every connection is serving a request: closing the new one"
                    );
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            epoch: self.epoch,
            in_flight: AtomicU32::new(0),
            idle_since: AtomicU64::new(nanos_since(self.epoch)),
            head_started: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            command: AtomicU8::new(RUN),
            waker: AtomicWaker::new(),
        });
        live.insert(id, Arc::clone(&connection));
        self.count.send_replace(live.len());
        Some(connection)
    }

    /// Forgets a connection that ended.
    pub fn remove(&self, connection: &Connection) {
        let mut live = self.live.lock();
        live.remove(&connection.id);
        self.count.send_replace(live.len());
    }

    /// Shutdown: idle and half-open connections close now, the others
    /// after the answer in progress.
    pub fn drain(&self) {
        for connection in self.live.lock().values() {
            connection.tell(DRAIN);
        }
    }

    /// Closes the connections that passed a limit, for as long as it is
    /// polled: looks at every connection when the next one is due, and
    /// within half of the shortest limit in any case (a head or a blocked
    /// write may start any moment, a new connection may come).
    pub async fn watch(&self) {
        loop {
            let mut at = nanos_since(self.epoch) + self.limits.recheck().as_nanos() as u64;
            for connection in self.live.lock().values() {
                match connection.next(&self.limits) {
                    Next::Close(reason) => {
                        tracing::debug!(reason, "closing a connection");
                        connection.tell(CLOSE);
                    }
                    Next::CheckAt(due) => at = at.min(due),
                }
            }
            tokio::time::sleep_until(self.epoch.instant_at(at)).await;
        }
    }

    /// Resolves once no connection is left.
    pub async fn all_closed(&self) {
        let mut count = self.count.subscribe();
        let _ = count.wait_for(|n| *n == 0).await;
    }
}

/// What the limits know of one connection. Instants are nanoseconds since
/// the registry's epoch, 0 for "not now".
pub struct Connection {
    id: u64,
    epoch: Epoch,
    in_flight: AtomicU32,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    write_blocked: AtomicU64,
    command: AtomicU8,
    /// The connection's task, woken when it is told something.
    waker: AtomicWaker,
}

/// What the server asks of a connection's task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Go on serving.
    Run,
    /// Close now.
    Close,
    /// Shutdown: close now if no request is being served, else after
    /// the answer in progress.
    Drain,
}

/// Whether a limit was passed, and when to look again.
enum Next {
    /// Within its limits until this instant (nanoseconds since the
    /// epoch; `u64::MAX` while no limit is running).
    CheckAt(u64),
    /// Close the connection, for this reason.
    Close(&'static str),
}

impl Connection {
    fn tell(&self, command: u8) {
        self.command.store(command, Ordering::Release);
        self.waker.wake();
    }

    /// What the connection's task is to do, read as it is polled; the
    /// task is woken when that changes.
    pub fn command(&self, cx: &Context<'_>) -> Command {
        self.waker.register(cx.waker());
        match self.command.load(Ordering::Acquire) {
            RUN => Command::Run,
            DRAIN => Command::Drain,
            _ => Command::Close,
        }
    }

    /// Whether a request is being served (at shutdown, a connection that
    /// is not, idle or with a head still arriving, closes at once).
    pub fn serving(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    /// A request is being served: an [`InFlight`] lasts until its answer
    /// was handed over completely.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.head_started.store(0, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    fn now(&self) -> u64 {
        nanos_since(self.epoch)
    }

    /// Whether a limit was passed, and when the next one running is due
    /// (the watcher looks again sooner anyway).
    fn next(&self, limits: &ConnectionLimits) -> Next {
        let now = self.now();
        let mut at = u64::MAX;
        let mut check = |since: u64, limit: Duration, reason| {
            if limit.is_zero() || since == 0 {
                return Ok(());
            }
            let due = since.saturating_add(limit.as_nanos() as u64);
            // The coarse clock lags by up to a tick: a check woken at its
            // due time must not find it still ahead (and spin).
            if due <= now.saturating_add(COARSE_SLACK_NANOS) {
                return Err(reason);
            }
            at = at.min(due);
            Ok(())
        };
        let outcome = (|| {
            check(
                self.write_blocked.load(Ordering::Relaxed),
                limits.write_timeout,
                "nobody read the answer within the write timeout",
            )?;
            if self.in_flight.load(Ordering::Acquire) == 0 {
                check(
                    self.head_started.load(Ordering::Relaxed),
                    limits.header_timeout,
                    "the request head did not arrive within the header timeout",
                )?;
                check(
                    self.idle_since.load(Ordering::Relaxed),
                    limits.idle_timeout,
                    "idle longer than the keep-alive timeout",
                )?;
            }
            Ok(())
        })();
        if let Err(reason) = outcome {
            return Next::Close(reason);
        }
        Next::CheckAt(at)
    }

    fn read_some(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_started.load(Ordering::Relaxed) == 0
        {
            self.head_started.store(self.now(), Ordering::Relaxed);
        }
    }

    fn write_pending(&self, pending: bool) {
        let blocked = self.write_blocked.load(Ordering::Relaxed);
        if pending && blocked == 0 {
            self.write_blocked.store(self.now(), Ordering::Relaxed);
        } else if !pending && blocked != 0 {
            self.write_blocked.store(0, Ordering::Relaxed);
        }
    }
}

/// More than one tick of the coarse clock (1 to 10 ms by kernel).
const COARSE_SLACK_NANOS: u64 = 20_000_000;

/// When the registry began, on both clocks.
#[derive(Clone, Copy)]
struct Epoch {
    instant: Instant,
    coarse: u64,
}

impl Epoch {
    fn now() -> Epoch {
        Epoch {
            instant: Instant::now(),
            coarse: coarse_nanos(),
        }
    }

    /// `nanos` after the epoch, on the timer's clock.
    fn instant_at(self, nanos: u64) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.instant + Duration::from_nanos(nanos))
    }
}

fn nanos_since(epoch: Epoch) -> u64 {
    // Never 0, which means "not now".
    coarse_nanos().saturating_sub(epoch.coarse).max(1)
}

/// The monotonic clock at its tick's resolution (a few milliseconds,
/// plenty for timeouts of seconds), read at a fraction of the cost of the
/// precise one: every request reads it twice.
fn coarse_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// A request being served on a connection, until dropped.
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let connection = &self.0;
        connection
            .idle_since
            .store(connection.now(), Ordering::Relaxed);
        connection.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request [`InFlight`] until it was sent.
pub struct TrackedBody {
    pub body: ResponseBody,
    pub in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The socket of a connection, telling the registry when a request head
/// starts arriving and when an answer waits for the client.
pub struct TrackedIo<S> {
    stream: S,
    connection: Arc<Connection>,
}

impl<S> TrackedIo<S> {
    pub fn new(stream: S, connection: Arc<Connection>) -> Self {
        TrackedIo { stream, connection }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TrackedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.connection.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TrackedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.connection.write_pending(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.connection.write_pending(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.connection.write_pending(polled.is_pending());
        polled
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections,
        }
    }

    #[test]
    fn the_cap_sheds_the_longest_idle_and_never_a_busy_one() {
        let connections = Connections::new(limits(2));
        let oldest = connections.admit().unwrap();
        let busy = connections.admit().unwrap();
        let _serving = busy.begin();
        let third = connections.admit().unwrap();
        assert_eq!(command(&oldest), Command::Close, "the idle one is shed");
        assert_eq!(command(&busy), Command::Run);
        connections.remove(&oldest);
        let _also_serving = third.begin();
        assert!(
            connections.admit().is_none(),
            "all busy: the newcomer is refused"
        );
    }

    #[test]
    fn limits_close_idle_and_slow_connections() {
        let none = limits(8);
        let connections = Connections::new(none);
        let connection = connections.admit().unwrap();
        assert!(matches!(connection.next(&none), Next::CheckAt(_)));
        let strict = ConnectionLimits {
            idle_timeout: Duration::from_nanos(1),
            ..none
        };
        connection.idle_since.store(1, Ordering::Relaxed); // long ago
        assert!(matches!(connection.next(&strict), Next::Close(_)));
        // While a request is served, idleness does not count.
        let serving = connection.begin();
        assert!(matches!(connection.next(&strict), Next::CheckAt(_)));
        connections.drain();
        assert_eq!(command(&connection), Command::Drain);
        assert!(connection.serving(), "finishes its answer first");
        drop(serving);
        assert!(!connection.serving());
    }

    fn command(connection: &Connection) -> Command {
        connection.command(&Context::from_waker(std::task::Waker::noop()))
    }
}

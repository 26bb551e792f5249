//! Where a request's time goes: the backend's share, accumulated by the
//! instrumented store while the request is served, and the rest (the
//! proxy's own work), sent as a `Server-Timing` header.
//!
//! The accumulator is task-local: the router opens it around each request
//! and every backend call made while serving that request adds to it,
//! without passing a context through the mode and store layers. Work done
//! outside the request's task (a passthrough body streamed out after the
//! headers) finds no accumulator and is not counted.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{HeaderName, HeaderValue};

/// The backend's share of one request: the union of the intervals in
/// which at least one backend call (or a body read from the backend) was
/// under way. Calls that overlap, as a query's concurrent reads do, count
/// once, so the share never exceeds the request's own duration.
#[derive(Clone, Copy, Default)]
struct Clock {
    /// Closed stretches of backend time.
    total: Duration,
    /// Intervals open now.
    open: u32,
    /// Since when at least one interval has been open.
    since: Option<Instant>,
}

tokio::task_local! {
    static BACKEND_CLOCK: Cell<Clock>;
}

/// Runs `serve` with a fresh backend clock; returns its output and the
/// time the backend took during it.
///
/// Not an `async fn`: that would keep `serve` both as its argument and
/// as the future it awaits, and the request future holding this one is
/// moved on every request. The clock is read in `map`, which runs inside
/// the scope.
pub fn with_backend_clock<F: Future>(serve: F) -> impl Future<Output = (F::Output, Duration)> {
    BACKEND_CLOCK.scope(
        Cell::new(Clock::default()),
        serve.map(|output| {
            let clock = BACKEND_CLOCK.with(Cell::get);
            // An interval still open (a body not read to its end yet)
            // counts until now.
            let open = match clock.since {
                Some(since) if clock.open > 0 => since.elapsed(),
                _ => Duration::ZERO,
            };
            (output, clock.total + open)
        }),
    )
}

/// One backend call, or the reading of one body from the backend, in the
/// request being served (if any). Closed explicitly with the instant its
/// caller measured, or when dropped (a call cancelled midway).
pub struct BackendInterval {
    counted: bool,
}

impl BackendInterval {
    pub fn open(at: Instant) -> BackendInterval {
        let counted = BACKEND_CLOCK
            .try_with(|cell| {
                let mut clock = cell.get();
                if clock.open == 0 {
                    clock.since = Some(at);
                }
                clock.open += 1;
                cell.set(clock);
            })
            .is_ok();
        BackendInterval { counted }
    }

    pub fn close(mut self, at: Instant) {
        self.close_at(at);
    }

    fn close_at(&mut self, at: Instant) {
        if !std::mem::take(&mut self.counted) {
            return;
        }
        // Outside the request's scope (a body dropped after the answer
        // went out) there is nothing to close: `with_backend_clock` has
        // already counted the open interval up to its end.
        let _ = BACKEND_CLOCK.try_with(|cell| {
            let mut clock = cell.get();
            clock.open = clock.open.saturating_sub(1);
            if clock.open == 0
                && let Some(since) = clock.since.take()
            {
                clock.total += at.saturating_duration_since(since);
            }
            cell.set(clock);
        });
    }
}

impl Drop for BackendInterval {
    fn drop(&mut self) {
        if self.counted {
            self.close_at(Instant::now());
        }
    }
}

/// The header's name, built once.
pub const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `backend;dur=1.234, proxy;dur=0.056`: milliseconds with microsecond
/// digits, as the Server-Timing specification has them. `proxy` is the
/// total less the backend's share.
pub fn server_timing(backend: Duration, total: Duration) -> HeaderValue {
    let proxy = total.saturating_sub(backend);
    // On every answer: written digit by digit into a stack buffer rather
    // than through the formatting machinery.
    let mut text = Buffer {
        bytes: [0; 96],
        len: 0,
    };
    text.push(b"backend;dur=");
    text.push_millis(backend);
    text.push(b", proxy;dur=");
    text.push_millis(proxy);
    HeaderValue::from_bytes(text.as_bytes()).expect("digits and ASCII punctuation only")
}

/// Room for both metrics with 20-digit millisecond parts.
struct Buffer {
    bytes: [u8; 96],
    len: usize,
}

impl Buffer {
    fn push(&mut self, part: &[u8]) {
        self.bytes[self.len..self.len + part.len()].copy_from_slice(part);
        self.len += part.len();
    }

    /// `1234.567` for 1 234 567 µs.
    fn push_millis(&mut self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let mut digits = [0u8; 20];
        let mut rest = micros / 1000;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(&digits[start..]);
        let fraction = micros % 1000;
        self.push(&[
            b'.',
            b'0' + (fraction / 100) as u8,
            b'0' + (fraction / 10 % 10) as u8,
            b'0' + (fraction % 10) as u8,
        ]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backend_time_adds_up_inside_the_clock_only() {
        let outside = Instant::now();
        BackendInterval::open(outside).close(outside + Duration::from_secs(100)); // ignored
        let ((), backend) = with_backend_clock(async {
            let start = Instant::now();
            BackendInterval::open(start).close(start + Duration::from_millis(2));
            tokio::task::yield_now().await;
            let later = start + Duration::from_millis(10);
            BackendInterval::open(later).close(later + Duration::from_millis(3));
        })
        .await;
        assert_eq!(backend, Duration::from_millis(5));
        let ((), fresh) = with_backend_clock(async {}).await;
        assert_eq!(fresh, Duration::ZERO);
    }

    #[tokio::test]
    async fn overlapping_calls_count_once() {
        let ((), backend) = with_backend_clock(async {
            let start = Instant::now();
            let first = BackendInterval::open(start);
            let second = BackendInterval::open(start + Duration::from_millis(1));
            first.close(start + Duration::from_millis(4));
            let third = BackendInterval::open(start + Duration::from_millis(5));
            second.close(start + Duration::from_millis(6));
            third.close(start + Duration::from_millis(8));
            let gap = start + Duration::from_millis(20);
            BackendInterval::open(gap).close(gap + Duration::from_millis(2));
        })
        .await;
        // [0, 8] and [20, 22]: 10 ms, where the sum of the calls is 14 ms.
        assert_eq!(backend, Duration::from_millis(10));
    }

    #[test]
    fn header_is_in_milliseconds() {
        let value = server_timing(Duration::from_micros(1500), Duration::from_micros(2000));
        assert_eq!(value, "backend;dur=1.500, proxy;dur=0.500");
        let value = server_timing(Duration::from_micros(12_345_678), Duration::from_secs(13));
        assert_eq!(value, "backend;dur=12345.678, proxy;dur=654.322");
        let value = server_timing(Duration::ZERO, Duration::from_nanos(999));
        assert_eq!(value, "backend;dur=0.000, proxy;dur=0.000");
        let huge = server_timing(Duration::MAX, Duration::MAX);
        assert!(
            huge.to_str()
                .unwrap()
                .starts_with("backend;dur=18446744073709551.")
        );
        // A clock that saw more backend time than total never goes negative.
        let value = server_timing(Duration::from_millis(2), Duration::from_millis(1));
        assert_eq!(value, "backend;dur=2.000, proxy;dur=0.000");
    }
}

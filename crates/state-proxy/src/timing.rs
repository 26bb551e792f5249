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
use std::time::Duration;

use http::{HeaderName, HeaderValue};

tokio::task_local! {
    static BACKEND_TIME: Cell<Duration>;
}

/// Runs `serve` with a fresh backend clock; returns its output and the
/// time the backend took during it.
pub async fn with_backend_clock<F: Future>(serve: F) -> (F::Output, Duration) {
    BACKEND_TIME
        .scope(Cell::new(Duration::ZERO), async {
            let output = serve.await;
            let backend = BACKEND_TIME.with(Cell::get);
            (output, backend)
        })
        .await
}

/// Adds backend time to the request being served, if any.
pub fn add_backend_time(elapsed: Duration) {
    let _ = BACKEND_TIME.try_with(|total| total.set(total.get() + elapsed));
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
        add_backend_time(Duration::from_secs(100)); // outside: ignored
        let ((), backend) = with_backend_clock(async {
            add_backend_time(Duration::from_millis(2));
            tokio::task::yield_now().await;
            add_backend_time(Duration::from_millis(3));
        })
        .await;
        assert_eq!(backend, Duration::from_millis(5));
        let ((), fresh) = with_backend_clock(async {}).await;
        assert_eq!(fresh, Duration::ZERO);
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

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

use http::HeaderValue;

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

/// `backend;dur=1.234, proxy;dur=0.056`: milliseconds, as the
/// Server-Timing specification has them. `proxy` is the total less the
/// backend's share.
pub fn server_timing(backend: Duration, total: Duration) -> HeaderValue {
    use std::fmt::Write;
    let proxy = total.saturating_sub(backend);
    // Whole microseconds printed as integers: this is on every answer,
    // and integer formatting costs a third of float formatting.
    let (backend_us, proxy_us) = (backend.as_micros(), proxy.as_micros());
    let mut text = String::with_capacity(48);
    let _ = write!(
        text,
        "backend;dur={}.{:03}, proxy;dur={}.{:03}",
        backend_us / 1000,
        backend_us % 1000,
        proxy_us / 1000,
        proxy_us % 1000
    );
    HeaderValue::from_str(&text).expect("digits and ASCII punctuation only")
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
        // A clock that saw more backend time than total never goes negative.
        let value = server_timing(Duration::from_millis(2), Duration::from_millis(1));
        assert_eq!(value, "backend;dur=2.000, proxy;dur=0.000");
    }
}

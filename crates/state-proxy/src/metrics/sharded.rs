//! Counters and histograms that many threads update at once without
//! sharing a cache line: each thread adds to its own shard, and a scrape
//! sums the shards. With one shared atomic per series, every request made
//! the cores trade that line back and forth, which cost more than the
//! arithmetic (see docs/operations.md, "Overhead").

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// Unused cells between two shards, so that no cache line (128 bytes
/// with adjacent-line prefetch) holds cells of two shards.
const GUARD_CELLS: usize = 16;

/// Enough shards for every worker thread to have its own on typical
/// machines; threads beyond that share (still correct, a little slower).
static SHARDS: LazyLock<usize> = LazyLock::new(|| {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .clamp(2, 64)
});

/// The shard of the calling thread: assigned round-robin on first use.
fn shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    SHARD.with(|shard| *shard) % *SHARDS
}

/// `len` counters, sharded.
pub(crate) struct Cells {
    len: usize,
    stride: usize,
    cells: Box<[AtomicU64]>,
}

impl Cells {
    pub fn new(len: usize) -> Cells {
        let stride = len.next_multiple_of(GUARD_CELLS) + GUARD_CELLS;
        Cells {
            len,
            stride,
            cells: (0..stride * *SHARDS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn add(&self, index: usize, amount: u64) {
        debug_assert!(index < self.len);
        self.cells[shard() * self.stride + index].fetch_add(amount, Ordering::Relaxed);
    }

    /// The total over every shard.
    pub fn get(&self, index: usize) -> u64 {
        (0..*SHARDS)
            .map(|shard| self.cells[shard * self.stride + index].load(Ordering::Relaxed))
            .sum()
    }
}

/// `series` histograms over the same bucket bounds, sharded. A series
/// is its bucket counts then the sum of its observations in nanoseconds
/// (integers add without a compare-and-swap loop).
pub(crate) struct Histograms {
    /// Upper bounds in nanoseconds, ascending; `+Inf` is implicit.
    bounds_nanos: Box<[u64]>,
    bounds_seconds: &'static [f64],
    cells: Cells,
}

/// What a scrape reads of one series.
pub(crate) struct HistogramSnapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// `(upper bound, observations in this bucket)`, `+Inf` last.
    pub buckets: Vec<(f64, u64)>,
}

impl Histograms {
    pub fn new(bounds_seconds: &'static [f64], series: usize) -> Histograms {
        Histograms {
            bounds_nanos: bounds_seconds
                .iter()
                .map(|seconds| (seconds * 1e9) as u64)
                .collect(),
            bounds_seconds,
            cells: Cells::new(series * (bounds_seconds.len() + 2)),
        }
    }

    fn width(&self) -> usize {
        self.bounds_nanos.len() + 2
    }

    pub fn observe(&self, series: usize, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_nanos.partition_point(|bound| *bound < nanos);
        let base = series * self.width();
        self.cells.add(base + bucket, 1);
        self.cells.add(base + self.width() - 1, nanos);
    }

    pub fn snapshot(&self, series: usize) -> HistogramSnapshot {
        let base = series * self.width();
        let buckets: Vec<(f64, u64)> = self
            .bounds_seconds
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, self.cells.get(base + i)))
            .collect();
        HistogramSnapshot {
            sum_seconds: self.cells.get(base + self.width() - 1) as f64 / 1e9,
            count: buckets.iter().map(|(_, count)| count).sum(),
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up() {
        let cells = std::sync::Arc::new(Cells::new(3));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let cells = std::sync::Arc::clone(&cells);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        cells.add(1, 2);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!((cells.get(0), cells.get(1), cells.get(2)), (0, 16_000, 0));
    }

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        static BOUNDS: [f64; 3] = [0.001, 0.01, 0.1];
        let histograms = Histograms::new(&BOUNDS, 2);
        histograms.observe(1, Duration::from_micros(500));
        histograms.observe(1, Duration::from_millis(1)); // on the bound: le=0.001
        histograms.observe(1, Duration::from_millis(50));
        histograms.observe(1, Duration::from_secs(3));
        let snapshot = histograms.snapshot(1);
        assert_eq!(
            snapshot.buckets,
            vec![(0.001, 2), (0.01, 0), (0.1, 1), (f64::INFINITY, 1)]
        );
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 3.0515).abs() < 1e-9);
        assert_eq!(histograms.snapshot(0).count, 0);
    }
}

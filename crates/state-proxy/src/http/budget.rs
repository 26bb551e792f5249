//! The memory budget: one number bounding the bytes of every request body
//! the proxy holds whole in memory, shared by all requests.
//!
//! A body takes its share before it is read: all of it when the client
//! announced its length, in growing steps as a chunked body arrives. A
//! streamed write takes what its store holds of it at once
//! (`StoreInfo::streamed_write`), and a value a store can only read whole
//! (`StoreInfo::whole_reads`) takes its size until it was sent. A
//! request that cannot get its share waits, at most the configured time,
//! and then answers 503 with `Retry-After`; nothing already admitted is
//! ever failed for it. A body larger than the whole budget can never be
//! admitted and answers 413 at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, ErrorKind, Result};

/// Accounting unit: permits count KiB, so one acquisition covers up to
/// 4 TiB (`acquire_many` takes a `u32`).
const UNIT: u64 = 1024;

/// The shared budget.
#[derive(Clone, Debug)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    bytes: u64,
    wait: Duration,
}

/// A share of the budget, given back when dropped.
#[derive(Debug, Default)]
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
    bytes: u64,
}

impl Share {
    /// Bytes this share covers.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl MemoryBudget {
    /// A budget of `bytes`; a request waits at most `wait` for its share.
    pub fn new(bytes: u64, wait: Duration) -> MemoryBudget {
        MemoryBudget {
            semaphore: Arc::new(Semaphore::new(units(bytes) as usize)),
            bytes,
            wait,
        }
    }

    /// Effectively no budget (for tests that do not care).
    pub fn unbounded() -> MemoryBudget {
        MemoryBudget::new(1 << 50, Duration::from_secs(1))
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Bytes not taken by any request now.
    pub fn available(&self) -> u64 {
        self.semaphore.available_permits() as u64 * UNIT
    }

    /// Grows `share` to cover `bytes` in all, waiting at most the
    /// configured time.
    pub async fn grow(&self, share: &mut Share, bytes: u64) -> Result<()> {
        if bytes <= share.bytes {
            return Ok(());
        }
        if units(bytes) > units(self.bytes) {
            return Err(Error::new(
                ErrorKind::PayloadTooLarge,
                format!(
                    "request body of {bytes} bytes is larger than the memory budget \
                     of {} bytes (STATE_MAX_BUFFERED_BYTES)",
                    self.bytes
                ),
            ));
        }
        let more = (units(bytes) - units(share.bytes)) as u32;
        // The common case, a budget with room, takes no timer.
        let permit = match Arc::clone(&self.semaphore).try_acquire_many_owned(more) {
            Ok(permit) => permit,
            Err(_) => self.wait_for(more).await?,
        };
        match &mut share.permit {
            Some(held) => held.merge(permit),
            None => share.permit = Some(permit),
        }
        share.bytes = bytes;
        Ok(())
    }

    /// A new share of `bytes`, waiting at most the configured time.
    pub async fn take(&self, bytes: u64) -> Result<Share> {
        let mut share = Share::default();
        self.grow(&mut share, bytes).await?;
        Ok(share)
    }

    async fn wait_for(&self, units: u32) -> Result<OwnedSemaphorePermit> {
        let acquire = Arc::clone(&self.semaphore).acquire_many_owned(units);
        match tokio::time::timeout(self.wait, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(Error::internal("the memory budget was closed")),
            Err(_elapsed) => Err(Error::new(
                ErrorKind::Busy,
                format!(
                    "the proxy holds as many bodies in memory as its budget of \
                     {} bytes allows; retry shortly",
                    self.bytes
                ),
            )),
        }
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::kind_of;

    #[tokio::test]
    async fn shares_wait_then_fail_and_return_when_dropped() {
        let budget = MemoryBudget::new(10 * UNIT, Duration::from_millis(10));
        let mut first = Share::default();
        budget.grow(&mut first, 6 * UNIT).await.unwrap();
        budget.grow(&mut first, 8 * UNIT).await.unwrap();
        assert_eq!(budget.available(), 2 * UNIT);
        let mut second = Share::default();
        let refused = budget.grow(&mut second, 3 * UNIT).await;
        assert_eq!(kind_of(&refused), Some(ErrorKind::Busy));
        assert_eq!(second.bytes(), 0);
        drop(first);
        budget.grow(&mut second, 3 * UNIT).await.unwrap();
        let whole = budget.grow(&mut Share::default(), 11 * UNIT).await;
        assert_eq!(kind_of(&whole), Some(ErrorKind::PayloadTooLarge));
    }
}

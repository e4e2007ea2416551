//! [`LimitBackend`] for [`RedisBackend`]: the buckets of flow limits.
//!
//! A rate bucket is one string, `{P:limit:NAME:KEY}:rate`, holding the
//! theoretical arrival time of the generic cell rate algorithm in µs of the
//! server's clock (`TIME`), expiring when every permit is back; a concurrency
//! bucket is one sorted set, `{P:limit:NAME:KEY}:slots`, of holders scored by
//! the end of their lease. Each script reads and writes one key, so buckets
//! spread over a cluster's slots and every process shares them, whatever its
//! own clock says.

use std::time::Duration;

use async_trait::async_trait;
use messaging_core::BackendError;
use messaging_core::limit::{LimitBackend, LimitBucket, Permits, Rate};

use crate::RedisBackend;
use crate::error::backend_error;
use crate::scripts::SCRIPTS;

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[async_trait]
impl LimitBackend for RedisBackend {
    async fn reserve_permits(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
        count: u32,
    ) -> Result<Permits, BackendError> {
        let key = self.inner.keys.limit_rate(&bucket.limit, &bucket.key);
        let wait: String = SCRIPTS
            .limit_reserve
            .key(&key)
            .arg(rate.emission_interval_micros())
            .arg(rate.burst_tolerance_micros())
            .arg(count.max(1))
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        let due_in: i64 = wait
            .parse()
            .map_err(|_| BackendError::command(format!("limit_reserve answered {wait:?}")))?;
        Ok(Permits::new(due_in, rate, count.max(1)))
    }

    async fn acquire_slot(
        &self,
        bucket: &LimitBucket,
        max: u32,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, BackendError> {
        let key = self.inner.keys.limit_slots(&bucket.limit, &bucket.key);
        let taken: i64 = SCRIPTS
            .limit_acquire
            .key(&key)
            .arg(max)
            .arg(holder)
            .arg(millis(lease))
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(taken == 1)
    }

    async fn release_slot(&self, bucket: &LimitBucket, holder: &str) -> Result<(), BackendError> {
        let key = self.inner.keys.limit_slots(&bucket.limit, &bucket.key);
        let _: i64 = redis::cmd("ZREM")
            .arg(&key)
            .arg(holder)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

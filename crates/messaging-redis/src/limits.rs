//! [`LimitBackend`] for [`RedisBackend`]: the buckets of flow limits.
//!
//! A rate bucket is one string, `{P:limit:NAME:KEY}:rate`, holding the
//! theoretical arrival time of the generic cell rate algorithm in µs of the
//! server's clock (`TIME`), expiring when every permit is back; a concurrency
//! bucket is one sorted set, `{P:limit:NAME:KEY}:slots`, of holders scored by
//! the end of their lease. Each script (or command) reads and writes one key,
//! so buckets spread over a cluster's slots and every process shares them,
//! whatever its own clock says. Many holders take (or renew) their slots in
//! one script call (one `ZADD` for all of them when the bucket has room for
//! every one), and free them in one `ZREM`; permits taken ahead for the
//! runtime to hand out itself come with the permits asked, in one call.

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
        Ok(self.reserve_permits_ahead(bucket, rate, count, 0).await?.0)
    }

    async fn reserve_permits_ahead(
        &self,
        bucket: &LimitBucket,
        rate: Rate,
        count: u32,
        ahead: u32,
    ) -> Result<(Permits, u32), BackendError> {
        let key = self.inner.keys.limit_rate(&bucket.limit, &bucket.key);
        let answer: (String, String) = SCRIPTS
            .limit_reserve
            .key(&key)
            .arg(rate.emission_interval_micros())
            .arg(rate.burst_tolerance_micros())
            .arg(count.max(1))
            .arg(ahead)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        let invalid = || BackendError::command(format!("limit_reserve answered {answer:?}"));
        let due_in: i64 = answer.0.parse().map_err(|_| invalid())?;
        let taken_ahead: u32 = answer.1.parse().map_err(|_| invalid())?;
        if taken_ahead > ahead {
            return Err(invalid());
        }
        Ok((Permits::new(due_in, rate, count.max(1)), taken_ahead))
    }

    async fn acquire_slots(
        &self,
        bucket: &LimitBucket,
        max: u32,
        holders: &[String],
        lease: Duration,
    ) -> Result<Vec<bool>, BackendError> {
        if holders.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.inner.keys.limit_slots(&bucket.limit, &bucket.key);
        let mut invocation = SCRIPTS.limit_acquire.key(&key);
        invocation.arg(max).arg(millis(lease)).arg(holders);
        let taken: Vec<i64> = invocation
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        if taken.len() != holders.len() {
            return Err(BackendError::command(format!(
                "limit_acquire answered {} entries for {} holders",
                taken.len(),
                holders.len()
            )));
        }
        Ok(taken.into_iter().map(|taken| taken == 1).collect())
    }

    async fn release_slots(
        &self,
        bucket: &LimitBucket,
        holders: &[String],
    ) -> Result<(), BackendError> {
        if holders.is_empty() {
            return Ok(());
        }
        let key = self.inner.keys.limit_slots(&bucket.limit, &bucket.key);
        let _: i64 = redis::cmd("ZREM")
            .arg(&key)
            .arg(holders)
            .query_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(())
    }
}

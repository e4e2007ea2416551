//! The hot path of the Redis backend: publish, schedule, read, reclaim and
//! settle (what a producer and a consumer call), as [`MessageBackend`].

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::{
    BackendError, ConsumerId, Delivery, MessageBackend, ReadFrom, ReadOptions, Receipt, Settlement,
    StartFrom,
};
use messaging_model::{Message, MessageStatus, Topic};

use crate::RedisBackend;
use crate::ack_queue::AckRequest;
use crate::codec;
use crate::error::{backend_error, is_not_replicated};
use crate::inner::{delayed_member, due_score, settlement};
use crate::scripts::SCRIPTS;

#[async_trait]
impl MessageBackend for RedisBackend {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn publish(&self, message: &Message) -> Result<String, BackendError> {
        let json = codec::encode(message)?;
        let ids = self.inner.append(&message.topic, &[json], 0).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| BackendError::command("publish.lua returned no entry id"))
    }

    async fn publish_batch(&self, messages: &[Message]) -> Result<Vec<String>, BackendError> {
        // Every message is checked before anything is sent.
        let encoded = messages
            .iter()
            .map(codec::encode)
            .collect::<Result<Vec<_>, _>>()?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        // One script call per run of consecutive messages of one topic: all or
        // none of the run against the topic's cap; the first refusal ends it.
        let mut ids = Vec::with_capacity(messages.len());
        let mut encoded = encoded.into_iter();
        for run in messages.chunk_by(|a, b| a.topic == b.topic) {
            let jsons: Vec<Vec<u8>> = encoded.by_ref().take(run.len()).collect();
            let written = ids.len();
            ids.extend(self.inner.append(&run[0].topic, &jsons, written).await?);
        }
        Ok(ids)
    }

    async fn schedule(
        &self,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        let inner = &self.inner;
        let mut pending = message.clone();
        pending.status = MessageStatus::Pending;
        let score = due_score(deliver_at);
        let member = delayed_member(&pending)?;
        let scheduled = inner
            .capped(
                &SCRIPTS.schedule,
                &message.topic,
                &[score.to_string().as_bytes(), &member],
                0,
            )
            .await;
        // Not replicated in time is still scheduled on the primary: indexed
        // like any other, so it is promoted at its time unless a failover
        // loses it.
        if let Err(error) = &scheduled
            && !is_not_replicated(error)
        {
            return scheduled.map(|_| ());
        }
        inner.indexed(&message.topic, score).await;
        inner.schedule.due_at(&message.topic, deliver_at);
        scheduled.map(|_| ())
    }

    async fn ensure_group(
        &self,
        topic: &Topic,
        group: &str,
        start: StartFrom,
    ) -> Result<(), BackendError> {
        self.inner.register(topic).await?;
        self.inner.create_group(topic, group, start).await
    }

    async fn read(
        &self,
        consumer: &ConsumerId,
        options: &ReadOptions,
    ) -> Result<Vec<Delivery>, BackendError> {
        if options.count == 0 {
            return Ok(Vec::new());
        }
        match &options.from {
            ReadFrom::New => {
                self.inner
                    .read_new(consumer, options.count, options.block)
                    .await
            }
            ReadFrom::OwnPending { after } => {
                self.inner
                    .read_own_pending(consumer, after.as_deref(), options.count)
                    .await
            }
        }
    }

    async fn reclaim_idle(
        &self,
        consumer: &ConsumerId,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Delivery>, BackendError> {
        self.inner.reclaim_idle(consumer, min_idle, count).await
    }

    async fn extend_lease(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        let keys = self.inner.keys.topic(receipt.topic());
        let done: i64 = SCRIPTS
            .extend_lease
            .key(&keys.stream)
            .arg(receipt.group())
            .arg(&receipt.consumer.consumer)
            .arg(&receipt.entry_id)
            .arg(receipt.delivery_count)
            .invoke_async(&mut self.inner.connection())
            .await
            .map_err(backend_error)?;
        Ok(settlement(receipt, "extend lease", done == 1))
    }

    async fn ack(&self, receipt: &Receipt) -> Result<Settlement, BackendError> {
        let (done, settled) = tokio::sync::oneshot::channel();
        let request = AckRequest {
            receipt: receipt.clone(),
            done,
        };
        let settled = match self.inner.acks.send(request) {
            Ok(()) => settled.await.unwrap_or_else(|_| {
                Err(BackendError::unavailable(std::io::Error::other(
                    "the acknowledgement task stopped",
                )))
            })?,
            // Only while the backend is being dropped.
            Err(_) => {
                let settled = self
                    .inner
                    .ack_many(&[receipt])
                    .await
                    .map_err(backend_error)?;
                settled.first().copied().unwrap_or(false)
            }
        };
        Ok(settlement(receipt, "ack", settled))
    }

    async fn retry_at(
        &self,
        receipt: &Receipt,
        message: &Message,
        deliver_at: DateTime<Utc>,
    ) -> Result<Settlement, BackendError> {
        let inner = &self.inner;
        let keys = inner.keys.topic(receipt.topic());
        let score = due_score(deliver_at);
        let done: i64 = SCRIPTS
            .retry
            .key(&keys.stream)
            .key(&keys.delayed)
            .arg(receipt.group())
            .arg(&receipt.consumer.consumer)
            .arg(&receipt.entry_id)
            .arg(receipt.delivery_count)
            .arg(score)
            .arg(delayed_member(message)?)
            .invoke_async(&mut inner.connection())
            .await
            .map_err(backend_error)?;
        if done == 1 {
            inner.indexed(receipt.topic(), score).await;
            inner.schedule.due_at(receipt.topic(), deliver_at);
            inner.touched(receipt.topic());
        }
        Ok(settlement(receipt, "retry", done == 1))
    }

    async fn dead_letter(
        &self,
        receipt: &Receipt,
        message: &Message,
        error: &str,
    ) -> Result<Settlement, BackendError> {
        let mut message = message.clone();
        message.status = MessageStatus::Failed;
        let attempts = message.retry.saturating_add(1);
        self.inner
            .dead_letter_as(receipt, &message, error, attempts)
            .await
    }

    fn cancel_backend(&self) -> Option<&dyn messaging_core::CancelBackend> {
        Some(self)
    }

    fn unique_backend(&self) -> Option<&dyn messaging_core::unique::UniqueBackend> {
        Some(self)
    }

    fn pause_backend(&self) -> Option<&dyn messaging_core::PauseBackend> {
        Some(self)
    }

    fn limit_backend(&self) -> Option<&dyn messaging_core::limit::LimitBackend> {
        Some(self)
    }
}

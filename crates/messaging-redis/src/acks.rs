//! Acknowledgements coalesced into one fenced script call.
//!
//! Handlers finish one by one and each acks its own delivery. Under load, acks
//! that arrive while earlier ones are on the wire wait here and leave together:
//! one `ack.lua` call (one XPENDING check per receipt, one XACK) per topic and
//! group. A lone ack leaves at once, so light traffic pays no extra latency.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use messaging_core::{BackendError, Receipt};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::backend::Inner;
use crate::error::shared_backend_error;

/// Most receipts in one script call.
const MAX_BATCH: usize = 256;
/// Script calls on the wire at once; more acks wait and join the next batch.
const IN_FLIGHT: usize = 2;

pub(crate) struct AckRequest {
    pub(crate) receipt: Receipt,
    pub(crate) done: oneshot::Sender<Result<bool, BackendError>>,
}

pub(crate) type AckSender = mpsc::UnboundedSender<AckRequest>;

pub(crate) fn channel() -> (AckSender, mpsc::UnboundedReceiver<AckRequest>) {
    mpsc::unbounded_channel()
}

/// Runs until the backend is dropped (its sender with it).
pub(crate) async fn run(backend: Weak<Inner>, mut requests: mpsc::UnboundedReceiver<AckRequest>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = requests.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match requests.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let Some(inner) = backend.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            settle(&inner, batch).await;
            drop(slot);
        });
    }
}

async fn settle(inner: &Inner, batch: Vec<AckRequest>) {
    let mut by_group: HashMap<(String, String), Vec<AckRequest>> = HashMap::new();
    for request in batch {
        let key = (request.receipt.topic.clone(), request.receipt.group.clone());
        by_group.entry(key).or_default().push(request);
    }
    let calls = by_group.into_values().map(|requests| async move {
        let receipts: Vec<&Receipt> = requests.iter().map(|request| &request.receipt).collect();
        match inner.ack_many(&receipts).await {
            Ok(settled) => {
                for (request, settled) in requests.into_iter().zip(settled) {
                    let _ = request.done.send(Ok(settled));
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for request in requests {
                    let _ = request.done.send(Err(shared_backend_error(&error)));
                }
            }
        }
    });
    futures::future::join_all(calls).await;
}

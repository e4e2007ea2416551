//! Acknowledgements coalesced into one fenced script call.
//!
//! Handlers finish one by one and each acks its own delivery. Under load, acks
//! that arrive while earlier ones are on the wire wait here and leave together:
//! one `ack.lua` call (one XPENDING check per receipt, one XACK) per topic and
//! group. A lone ack leaves at once, so light traffic pays no extra latency.

use std::sync::{Arc, Weak};

use messaging_core::Receipt;
use tokio::sync::{Semaphore, mpsc};

use crate::ack_queue::AckRequest;
use crate::error::shared_backend_error;
use crate::inner::Inner;

/// Most receipts in one script call.
const MAX_BATCH: usize = 256;
/// Script calls on the wire at once; more acks wait and join the next batch.
const IN_FLIGHT: usize = 2;

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

async fn settle(inner: &Inner, mut batch: Vec<AckRequest>) {
    // One script call per topic and group.
    batch.sort_by(|a, b| {
        (a.receipt.topic(), a.receipt.group()).cmp(&(b.receipt.topic(), b.receipt.group()))
    });
    let mut by_group: Vec<Vec<AckRequest>> = Vec::new();
    for request in batch {
        match by_group.last_mut() {
            Some(run)
                if run[0].receipt.topic() == request.receipt.topic()
                    && run[0].receipt.group() == request.receipt.group() =>
            {
                run.push(request)
            }
            _ => by_group.push(vec![request]),
        }
    }
    let calls = by_group.into_iter().map(|requests| async move {
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

//! Periodic jobs fire each tick once across processes, however often one of
//! them is killed.
//!
//! Three real `messaging scheduler` processes run one 1-second schedule added
//! with `messaging schedules add`; one of them is SIGKILLed and restarted after
//! every few ticks, at least 15 times, over 60 ticks. Each tick's message
//! carries the tick in its metadata: from the first tick to the last, every
//! second is there exactly once (0 missing, 0 doubled), because a tick is
//! claimed and published in one Redis script and the other schedulers go on
//! while one is down.
//!
//! Run: `cargo test -p messaging-cli --test scheduler_kills` with `REDIS_URL`.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use messaging_core::{HandlerError, MessageHandler, StartFrom, SubscribeOptions};
use messaging_model::Message;
use support::Env;

const TICKS: usize = 60;
const KILLS: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_schedulers_one_killed_again_and_again_publish_every_tick_once() {
    support::run(|env| Box::pin(scenario(env))).await;
}

/// Counts each tick seen.
#[derive(Clone, Default)]
struct Ticks(Arc<Mutex<BTreeMap<DateTime<Utc>, usize>>>);

#[async_trait]
impl MessageHandler for Ticks {
    async fn handle(&self, message: Message) -> Result<(), HandlerError> {
        let tick: DateTime<Utc> = message.metadata["schedule_tick"]
            .parse()
            .map_err(|error| HandlerError::permanent(format!("bad tick: {error}")))?;
        *self.0.lock().unwrap().entry(tick).or_insert(0) += 1;
        Ok(())
    }
}

impl Ticks {
    fn seen(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

async fn scenario(env: &Env) {
    let ticks = Ticks::default();
    env.messaging
        .subscribe_with(
            "ops.tick",
            SubscribeOptions::new("tick-check").with_start_from(StartFrom::Earliest),
            ticks.clone(),
        )
        .await
        .expect("the checker subscribes");
    let scheduler_args = ["scheduler", "--refresh", "200ms"];
    let mut schedulers = Vec::new();
    for _ in 0..3 {
        schedulers.push(
            env.spawn_ready(&scheduler_args, &[], "scheduler ready")
                .await,
        );
    }
    let added = env
        .run(&[
            "schedules",
            "add",
            "every-second",
            "--topic",
            "ops.tick",
            "--every",
            "1s",
        ])
        .await;
    assert_eq!(added.code, Some(0), "{added:?}");

    let mut kills = 0;
    let mut victim = 0;
    while ticks.seen() < TICKS {
        let target = (ticks.seen() + 3).min(TICKS);
        env.eventually("more ticks", || async {
            (ticks.seen() >= target).then_some(())
        })
        .await;
        if kills < KILLS {
            let killed = schedulers.remove(victim);
            killed.kill().await;
            kills += 1;
            schedulers.insert(
                victim,
                env.spawn_ready(&scheduler_args, &[], "scheduler ready")
                    .await,
            );
            victim = (victim + 1) % 3;
        }
    }
    let removed = env.run(&["schedules", "remove", "every-second"]).await;
    assert_eq!(removed.code, Some(0), "{removed:?}");
    for scheduler in schedulers {
        let (code, log) = scheduler.terminate().await;
        assert_eq!(code, Some(0), "{}", log.join("\n"));
    }
    // Every published tick has arrived once the stream is drained.
    let stats = env.messaging.stats("ops.tick").await.expect("stats");
    env.eventually("every published tick handled", || async {
        (ticks.0.lock().unwrap().values().sum::<usize>() as u64 >= stats.length).then_some(())
    })
    .await;
    env.messaging.shutdown().await;

    let seen = ticks.0.lock().unwrap().clone();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks published twice: {doubled:?}");
    let first = *seen.keys().next().expect("ticks");
    let last = *seen.keys().last().expect("ticks");
    let span = (last - first).num_seconds() as usize + 1;
    let missing: Vec<DateTime<Utc>> = (0..span)
        .map(|s| first + chrono::TimeDelta::seconds(s as i64))
        .filter(|tick| !seen.contains_key(tick))
        .collect();
    println!(
        "{} ticks from {first} to {last}, {kills} SIGKILLs: missing {}, doubled {}",
        seen.len(),
        missing.len(),
        doubled.len()
    );
    assert!(kills >= KILLS);
    assert!(seen.len() >= TICKS);
    assert!(missing.is_empty(), "ticks never published: {missing:?}");
    assert_eq!(
        stats.length as usize,
        seen.len(),
        "one stream entry per tick"
    );
}

/// SIGTERM right after `ready` is a clean stop, for each long-running command:
/// the signal handlers are installed before the line is printed (once they were
/// installed after, and a relay terminated at once died of the signal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_ready_is_a_clean_stop() {
    support::run(|env| {
        Box::pin(async move {
            for _ in 0..3 {
                for (args, ready) in [
                    (vec!["scheduler", "--refresh", "200ms"], "scheduler ready"),
                    (vec!["worker", "--no-metrics"], "worker ready"),
                ] {
                    let process = env.spawn_ready(&args, &[], ready).await;
                    let (code, log) = process.terminate().await;
                    assert_eq!(code, Some(0), "{args:?}: {}", log.join("\n"));
                }
            }
        })
    })
    .await;
}

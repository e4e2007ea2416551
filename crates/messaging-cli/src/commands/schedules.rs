//! `messaging schedules list|add|remove|pause|resume` and `messaging scheduler`
//! (see `docs/scheduling.md`).

use std::io::Write;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use messaging_core::schedule::{
    Every, Schedule, ScheduleBackend, ScheduleState, Scheduler, SchedulerOptions,
};
use serde::Serialize;

use crate::cli::{SchedulerArgs, SchedulesAction, SchedulesArgs};
use crate::exit::CliError;

/// Runs a schedules action against the shared Redis backend.
pub(crate) async fn run(args: SchedulesArgs) -> anyhow::Result<()> {
    let backend = crate::backend::shared_redis(&args.backend, "schedules").await?;
    let mut out = std::io::stdout().lock();
    execute(&*backend, args.action, Utc::now(), &mut out).await
}

/// What `list --json` prints per schedule.
#[derive(Debug, Serialize)]
struct Listed {
    #[serde(flatten)]
    schedule: Schedule,
    last_tick: Option<DateTime<Utc>>,
    next_tick: Option<DateTime<Utc>>,
}

pub(crate) async fn execute(
    backend: &dyn ScheduleBackend,
    action: SchedulesAction,
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match action {
        SchedulesAction::List { json } => {
            let states = backend.schedules().await?;
            if json {
                let listed: Vec<Listed> = states
                    .into_iter()
                    .map(|state| Listed {
                        next_tick: next_tick(&state, now),
                        last_tick: state.last_tick,
                        schedule: state.schedule,
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&listed)?)?;
            } else {
                write_table(&states, now, out)?;
            }
        }
        SchedulesAction::Add {
            name,
            topic,
            cron,
            every,
            tz,
            payload,
            missed,
        } => {
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|source| CliError::MalformedJson { source })?;
            let schedule = match (cron, every) {
                (Some(cron), _) => Schedule::cron(&name, &topic, &cron, payload)?,
                (None, Some(every)) => Schedule::interval(&name, &topic, every, payload)?,
                (None, None) => unreachable!("clap requires --cron or --every"),
            }
            .in_time_zone(&tz)?
            .with_missed(missed);
            // Replacing keeps when it was first made (no tick before it).
            let schedule = match backend
                .schedules()
                .await?
                .into_iter()
                .find(|state| state.schedule.name == name)
            {
                Some(existing) => {
                    let mut schedule = schedule;
                    schedule.created_at = existing.schedule.created_at;
                    schedule
                }
                None => schedule,
            };
            backend.save_schedule(&schedule).await?;
            let next = schedule
                .next_tick_after(now)
                .map_or_else(|| "never".to_owned(), |tick| tick.to_rfc3339());
            writeln!(out, "saved {name}: next tick {next}")?;
        }
        SchedulesAction::Remove { name } => {
            if !backend.remove_schedule(&name).await? {
                return Err(CliError::ScheduleNotFound { name }.into());
            }
            writeln!(out, "removed {name}")?;
        }
        SchedulesAction::Pause { name } => {
            if !backend.set_schedule_paused(&name, true).await? {
                return Err(CliError::ScheduleNotFound { name }.into());
            }
            writeln!(out, "paused {name}")?;
        }
        SchedulesAction::Resume { name } => {
            if !backend.set_schedule_paused(&name, false).await? {
                return Err(CliError::ScheduleNotFound { name }.into());
            }
            writeln!(out, "resumed {name}")?;
        }
    }
    Ok(())
}

fn next_tick(state: &ScheduleState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if state.schedule.paused {
        None
    } else {
        state.schedule.next_tick_after(now)
    }
}

fn write_table(
    states: &[ScheduleState],
    now: DateTime<Utc>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if states.is_empty() {
        return writeln!(out, "no schedules");
    }
    let time = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    let mut rows = vec![[
        "NAME".to_owned(),
        "TOPIC".to_owned(),
        "WHEN".to_owned(),
        "MISSED".to_owned(),
        "STATE".to_owned(),
        "LAST TICK (UTC)".to_owned(),
        "NEXT TICK (UTC)".to_owned(),
    ]];
    for state in states {
        let schedule = &state.schedule;
        let when = match &schedule.every {
            Every::Cron(cron) => format!("cron {} {}", cron.as_str(), schedule.time_zone.name()),
            Every::Interval(interval) => format!("every {}", humantime::format_duration(*interval)),
        };
        rows.push([
            schedule.name.clone(),
            schedule.topic.clone(),
            when,
            schedule.missed.as_str().to_owned(),
            if schedule.paused { "paused" } else { "active" }.to_owned(),
            time(state.last_tick),
            time(next_tick(state, now)),
        ]);
    }
    crate::commands::stats::write_aligned(&rows, out)
}

/// Runs a scheduler over the shared Redis backend until SIGTERM or Ctrl-C.
pub(crate) async fn run_scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let backend = crate::backend::shared_redis(&args.backend, "scheduler").await?;
    let count = backend.schedules().await?.len();
    let scheduler = Scheduler::start(
        backend as Arc<dyn ScheduleBackend>,
        SchedulerOptions::default().with_refresh(args.refresh),
    );
    let shutdown = super::shutdown_signal();
    // Scripts and tests wait for this line.
    eprintln!(
        "scheduler ready: {count} schedules, re-read every {}",
        humantime::format_duration(args.refresh)
    );
    shutdown.await;
    let stats = scheduler.stop().await;
    eprintln!(
        "scheduler stopped: published {}, taken by others {}, skipped {}",
        stats.fired, stats.lost, stats.skipped
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use messaging_core::InMemoryBackend;
    use messaging_core::schedule::MissedTicks;

    use super::*;

    #[tokio::test]
    async fn adds_lists_pauses_and_removes_schedules() {
        let backend = InMemoryBackend::new();
        let now: DateTime<Utc> = "2026-03-28T12:00:00Z".parse().unwrap();
        let mut out = Vec::new();
        let add = |name: &str, cron: Option<&str>, every: Option<std::time::Duration>| {
            SchedulesAction::Add {
                name: name.into(),
                topic: "digest.run".into(),
                cron: cron.map(str::to_owned),
                every,
                tz: "Europe/Berlin".into(),
                payload: r#"{"kind":"nightly"}"#.into(),
                missed: MissedTicks::CatchUpOne,
            }
        };
        execute(
            &backend,
            add("nightly", Some("0 30 2 * * *"), None),
            now,
            &mut out,
        )
        .await
        .unwrap();
        execute(
            &backend,
            add("beat", None, Some(std::time::Duration::from_secs(30))),
            now,
            &mut out,
        )
        .await
        .unwrap();
        let text = String::from_utf8(std::mem::take(&mut out)).unwrap();
        assert!(
            text.contains("saved nightly: next tick 2026-03-29T01:00:00+00:00"),
            "{text}"
        );

        execute(
            &backend,
            SchedulesAction::Pause {
                name: "beat".into(),
            },
            now,
            &mut out,
        )
        .await
        .unwrap();
        execute(
            &backend,
            SchedulesAction::List { json: false },
            now,
            &mut out,
        )
        .await
        .unwrap();
        let table = String::from_utf8(std::mem::take(&mut out)).unwrap();
        assert!(table.contains("cron 0 30 2 * * * Europe/Berlin"), "{table}");
        assert!(table.contains("every 30s"), "{table}");
        assert!(table.contains("paused"), "{table}");

        execute(
            &backend,
            SchedulesAction::List { json: true },
            now,
            &mut out,
        )
        .await
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json[1]["name"], "nightly");
        assert_eq!(json[1]["next_tick"], "2026-03-29T01:00:00Z");
        assert_eq!(json[1]["missed"], "catch_up_one");
        assert_eq!(json[0]["next_tick"], serde_json::Value::Null, "paused");

        let missing = execute(
            &backend,
            SchedulesAction::Remove {
                name: "none".into(),
            },
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&missing), crate::exit::NOT_FOUND);
        let bad = execute(
            &backend,
            add("bad", Some("61 * * * *"), None),
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(crate::exit::code(&bad), crate::exit::USAGE);
        execute(
            &backend,
            SchedulesAction::Remove {
                name: "beat".into(),
            },
            now,
            &mut Vec::new(),
        )
        .await
        .unwrap();
        assert_eq!(backend.schedules().await.unwrap().len(), 1);
    }
}

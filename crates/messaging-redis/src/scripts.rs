//! The Lua scripts of `lua/`, one per multi-key or fenced transition.

use std::sync::LazyLock;

use redis::Script;

macro_rules! fenced {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("../lua/fence.lua"),
            include_str!(concat!("../lua/", $file))
        ))
    };
}

macro_rules! plain {
    ($file:literal) => {
        Script::new(include_str!(concat!("../lua/", $file)))
    };
}

pub(crate) struct Scripts {
    pub(crate) ack: Script,
    pub(crate) cancel_delayed: Script,
    pub(crate) cancel_waiting: Script,
    pub(crate) retry: Script,
    pub(crate) dead_letter: Script,
    pub(crate) due: Script,
    pub(crate) extend_lease: Script,
    pub(crate) fire_tick: Script,
    pub(crate) limit_acquire: Script,
    pub(crate) limit_reserve: Script,
    pub(crate) promote: Script,
    pub(crate) publish: Script,
    pub(crate) schedule: Script,
    pub(crate) skip_tick: Script,
    pub(crate) read_pending: Script,
    pub(crate) reclaim: Script,
    pub(crate) replay: Script,
    pub(crate) purge: Script,
    pub(crate) stats: Script,
    pub(crate) trim: Script,
    pub(crate) unique_publish: Script,
    pub(crate) unique_release: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    ack: fenced!("ack.lua"),
    cancel_delayed: plain!("cancel_delayed.lua"),
    cancel_waiting: plain!("cancel_waiting.lua"),
    retry: fenced!("retry.lua"),
    dead_letter: fenced!("dead_letter.lua"),
    due: plain!("due.lua"),
    extend_lease: fenced!("extend_lease.lua"),
    fire_tick: plain!("fire_tick.lua"),
    limit_acquire: plain!("limit_acquire.lua"),
    limit_reserve: plain!("limit_reserve.lua"),
    promote: plain!("promote.lua"),
    publish: plain!("publish.lua"),
    schedule: plain!("schedule.lua"),
    skip_tick: plain!("skip_tick.lua"),
    read_pending: plain!("read_pending.lua"),
    reclaim: plain!("reclaim.lua"),
    replay: plain!("replay.lua"),
    purge: plain!("purge.lua"),
    stats: plain!("stats.lua"),
    trim: plain!("trim.lua"),
    unique_publish: plain!("unique_publish.lua"),
    unique_release: plain!("unique_release.lua"),
});

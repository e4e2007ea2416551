//! `messaging worker`.

use crate::cli::WorkerArgs;

/// Runs the worker until a signal.
pub(crate) async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("the worker is not available yet: it needs the notification crate")
}

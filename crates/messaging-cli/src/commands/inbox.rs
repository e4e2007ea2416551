//! `messaging inbox USER [--json]`.

use crate::cli::InboxArgs;

/// Lists a user's notifications.
pub(crate) async fn run(args: InboxArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("inbox is not available yet: it needs the notification-store-postgres crate")
}

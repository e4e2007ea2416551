//! `messaging demo`.

use crate::cli::DemoArgs;

/// Runs the demo.
pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("the demo is not available yet")
}

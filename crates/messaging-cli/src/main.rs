//! `messaging`: the notification worker and the operator commands of the
//! messaging suite.
//!
//! `main` only parses the arguments, starts the runtime and turns the outcome of
//! [`run`] into a documented exit code (see [`exit`]).

mod backend;
mod cli;
mod commands;
mod config;
mod exit;
mod metrics;
mod pipeline;
mod preferences_config;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match (&cli.log, &cli.command) {
        (Some(filter), _) => filter.clone(),
        (
            None,
            Command::Worker(_) | Command::Relay(_) | Command::Scheduler(_) | Command::Serve(_),
        ) => "warn".to_owned(),
        // A one-shot command ends while the Redis backend's background task may
        // be mid-command; what it reports then is not the user's concern.
        (None, _) => "warn,messaging_redis::maintenance=off".to_owned(),
    };
    init_tracing(&filter);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(exit::OTHER);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // `messaging dlq list T | head`: the reader left, nothing is wrong.
        Err(error) if exit::is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", exit::describe(&error));
            ExitCode::from(exit::code(&error))
        }
    }
}

/// Runs one command.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Worker(args) => commands::worker::run(args).await,
        Command::Publish(args) => commands::publish::run(args).await,
        Command::Tail(args) => commands::tail::run(args).await,
        Command::Topics(args) => commands::topics::run(args).await,
        Command::Stats(args) => commands::stats::run(args).await,
        Command::Dlq(args) => commands::dlq::run(args).await,
        Command::Inbox(args) => commands::inbox::run(args).await,
        Command::Suppressions(args) => commands::suppressions::run(args).await,
        Command::Prefs(args) => commands::prefs::run(args).await,
        Command::Demo(args) => commands::demo::run(args).await,
        Command::Relay(args) => commands::relay::run(args).await,
        Command::Schedules(args) => commands::schedules::run(args).await,
        Command::Scheduler(args) => commands::schedules::run_scheduler(args).await,
        Command::Cancel(args) => commands::cancel::run(args).await,
        Command::Serve(args) => commands::serve::run(args).await,
        Command::Token(args) => commands::serve::token(args),
    }
}

/// Logs go to stderr, so stdout stays clean for scripts.
fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

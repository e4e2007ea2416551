//! `messaging prefs get USER` and `messaging prefs set USER …`: a user's
//! notification preferences (opt-outs, quiet hours), in PostgreSQL.

use std::io::Write;

use clap::{Args, Subcommand, ValueEnum};
use messaging_model::NotificationKind;
use notification::store::{OptOut, PreferenceChange, PreferenceStore, Preferences, QuietHours};

use crate::cli::DatabaseArgs;
use crate::exit::CliError;

/// `messaging prefs`.
#[derive(Debug, Args)]
pub(crate) struct PrefsArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: PrefsCommand,
}

/// `messaging prefs get|set`.
#[derive(Debug, Subcommand)]
pub(crate) enum PrefsCommand {
    /// Print a user's preferences (the defaults when none are stored).
    Get(PrefsGetArgs),
    /// Turn a category and/or channel off or on for a user (neither: every
    /// notification, the global opt-out), or set their quiet hours.
    Set(PrefsSetArgs),
}

/// `messaging prefs get`.
#[derive(Debug, Args)]
pub(crate) struct PrefsGetArgs {
    /// The user id.
    pub(crate) user: String,
    /// JSON for scripts instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
}

/// A channel, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Channel {
    /// Email.
    Email,
    /// Text messages.
    Sms,
    /// Push notifications.
    Push,
    /// In-app notifications.
    System,
}

impl From<Channel> for NotificationKind {
    fn from(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::Email,
            Channel::Sms => Self::Sms,
            Channel::Push => Self::Push,
            Channel::System => Self::System,
        }
    }
}

/// `messaging prefs set`.
#[derive(Debug, Args)]
pub(crate) struct PrefsSetArgs {
    /// The user id.
    pub(crate) user: String,
    /// Only this channel [default: every channel].
    #[arg(long, value_enum)]
    pub(crate) channel: Option<Channel>,
    /// Only this category (`marketing`, `billing`, …) [default: every category].
    #[arg(long)]
    pub(crate) category: Option<String>,
    /// Opt out.
    #[arg(long, conflicts_with = "on")]
    pub(crate) off: bool,
    /// Opt back in (removes exactly the opt-out --channel/--category name).
    #[arg(long)]
    pub(crate) on: bool,
    /// Quiet hours, `HH:MM-HH:MM` local time (`22:00-07:00` wraps midnight);
    /// needs --time-zone.
    #[arg(
        long,
        value_name = "START-END",
        requires = "time_zone",
        conflicts_with = "no_quiet_hours"
    )]
    pub(crate) quiet_hours: Option<String>,
    /// The IANA time zone of --quiet-hours (`Europe/Berlin`).
    #[arg(long, value_name = "ZONE", requires = "quiet_hours")]
    pub(crate) time_zone: Option<String>,
    /// Remove the quiet hours.
    #[arg(long)]
    pub(crate) no_quiet_hours: bool,
    /// JSON for scripts instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
}

/// Runs `messaging prefs`.
pub(crate) async fn run(args: PrefsArgs) -> anyhow::Result<()> {
    match args.command {
        PrefsCommand::Get(args) => {
            let store = connect(&args.database).await?;
            let outcome = store.get_preferences(&args.user).await;
            store.close().await;
            print(&outcome?, args.json)
        }
        PrefsCommand::Set(args) => {
            let changes = changes(&args)?;
            let store = connect(&args.database).await?;
            let outcome = store.update_preferences(&args.user, &changes).await;
            store.close().await;
            print(&outcome?, args.json)
        }
    }
}

fn usage(name: &str, reason: impl Into<String>) -> anyhow::Error {
    CliError::InvalidSetting {
        name: name.to_owned(),
        reason: reason.into(),
    }
    .into()
}

/// The changes `set` asks for, checked before anything is opened.
fn changes(args: &PrefsSetArgs) -> anyhow::Result<Vec<PreferenceChange>> {
    let mut changes = Vec::new();
    let opt_out = match (&args.category, args.channel) {
        (Some(category), Some(channel)) => OptOut::category(category).on(channel.into()),
        (Some(category), None) => OptOut::category(category),
        (None, Some(channel)) => OptOut::channel(channel.into()),
        (None, None) => OptOut::everything(),
    };
    if args
        .category
        .as_deref()
        .is_some_and(|c| c.trim().is_empty())
    {
        return Err(usage("--category", "the category is empty"));
    }
    if args.off {
        changes.push(PreferenceChange::opt_out(opt_out));
    } else if args.on {
        changes.push(PreferenceChange::opt_in(opt_out));
    } else if args.category.is_some() || args.channel.is_some() {
        return Err(usage(
            "--off",
            "say --off or --on with --category/--channel",
        ));
    }
    if let (Some(window), Some(zone)) = (&args.quiet_hours, &args.time_zone) {
        changes.push(PreferenceChange::QuietHours(Some(quiet_hours(
            window, zone,
        )?)));
    }
    if args.no_quiet_hours {
        changes.push(PreferenceChange::QuietHours(None));
    }
    if changes.is_empty() {
        return Err(usage(
            "prefs set",
            "nothing to change: give --off, --on, --quiet-hours or --no-quiet-hours",
        ));
    }
    Ok(changes)
}

/// `22:00-07:00` in `Europe/Berlin`.
pub(crate) fn quiet_hours(window: &str, zone: &str) -> anyhow::Result<QuietHours> {
    let time_zone: chrono_tz::Tz = zone
        .parse()
        .map_err(|_| usage("--time-zone", format!("{zone:?} is not an IANA time zone")))?;
    let parse = |text: &str| chrono::NaiveTime::parse_from_str(text.trim(), "%H:%M");
    let (start, end) = window
        .split_once('-')
        .and_then(|(start, end)| Some((parse(start).ok()?, parse(end).ok()?)))
        .ok_or_else(|| usage("--quiet-hours", format!("{window:?} is not HH:MM-HH:MM")))?;
    Ok(QuietHours::new(start, end, time_zone))
}

async fn connect(
    database: &DatabaseArgs,
) -> anyhow::Result<notification_store_postgres::PostgresStore> {
    let Some(url) = database.database_url.as_deref() else {
        return Err(usage(
            "--database-url",
            "prefs reads PostgreSQL: pass --database-url URL or set DATABASE_URL",
        ));
    };
    let store =
        crate::pipeline::connect_postgres(url, database.db_schema.as_deref(), Some(2)).await?;
    if let Err(error) = store.migrate().await {
        store.close().await;
        return Err(error.into());
    }
    Ok(store)
}

fn print(prefs: &Preferences, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, prefs)?;
        writeln!(out)?;
        return Ok(());
    }
    let user = super::terminal_safe(&prefs.user_id);
    writeln!(out, "{user}:")?;
    if prefs.opt_outs.is_empty() {
        writeln!(out, "  opted out of: nothing")?;
    }
    for opt_out in &prefs.opt_outs {
        writeln!(out, "  {}", super::terminal_safe(&opt_out.describe()))?;
    }
    match &prefs.quiet_hours {
        Some(hours) => writeln!(
            out,
            "  quiet hours: {}-{} {}",
            hours.start.format("%H:%M"),
            hours.end.format("%H:%M"),
            hours.time_zone.name()
        )?,
        None => writeln!(out, "  quiet hours: none")?,
    }
    Ok(())
}

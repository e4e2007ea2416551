//! The command line, declared with clap's derive API: doc comments are the help.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure
  2  bad usage: unknown flag, malformed JSON, invalid topic, bad configuration
  3  a server (Redis, PostgreSQL, SMTP) could not be reached
  4  not found: no such topic, dead letter or notification
  5  timed out (tail --timeout)";

/// Run the notification worker and operate the messaging suite: publish and tail
/// messages, inspect topics and dead letters, read a user's inbox.
#[derive(Debug, Parser)]
#[command(name = "messaging", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
    /// Log filter for stderr (`info`, `messaging_core=debug`, …) [default: warn].
    #[arg(long, global = true, env = "MESSAGING_LOG", value_name = "FILTER", value_parser = parse_log_filter)]
    pub(crate) log: Option<String>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the notification worker: event listeners and notification dispatch,
    /// with a Prometheus endpoint; stops gracefully on SIGTERM or Ctrl-C.
    Worker(WorkerArgs),
    /// Publish one message to a topic (now, or after --delay).
    Publish(PublishArgs),
    /// Print a topic's messages as they arrive, without taking them from anyone.
    Tail(TailArgs),
    /// List, create or delete topics.
    Topics(TopicsArgs),
    /// Per topic: length, scheduled and dead-lettered messages, pending, lag and
    /// whether paused per group.
    Stats(StatsArgs),
    /// Inspect, replay or purge a topic's dead-letter queue.
    Dlq(DlqArgs),
    /// A user's notifications and unread count, from PostgreSQL.
    Inbox(InboxArgs),
    /// The suppression list, from PostgreSQL: addresses no longer sent to
    /// after a hard bounce, a complaint or repeated soft bounces.
    Suppressions(SuppressionsArgs),
    /// A user's notification preferences (opt-outs, quiet hours), in PostgreSQL.
    Prefs(crate::commands::prefs::PrefsArgs),
    /// The whole pipeline on the embedded default, no server needed.
    Demo(DemoArgs),
    /// Move committed transactional-outbox rows from PostgreSQL into Redis, in
    /// order per ordering key; several may run at once. Stops on SIGTERM or Ctrl-C.
    Relay(RelayArgs),
    /// List, add, remove, pause or resume periodic jobs (schedules).
    Schedules(SchedulesArgs),
    /// Run the schedules: publish each tick once across every scheduler process,
    /// until SIGTERM or Ctrl-C.
    Scheduler(SchedulerArgs),
    /// Cancel a message no consumer has received yet (delayed, waiting for a
    /// retry, or unread in the topic): it is removed and never delivered. A
    /// message already delivered is not cancellable (exit code 1).
    Cancel(CancelArgs),
    /// Serve the HTTP API: users' inboxes (with Server-Sent Events) and the
    /// operator API, until SIGTERM or Ctrl-C. Needs both a user token key and
    /// an admin token (see docs/http.md).
    Serve(ServeArgs),
    /// Print a user token for the HTTP API (an HS256 JWT signed with the user
    /// token key): for trying the API and for tests; your application mints its own.
    Token(TokenArgs),
}

/// The HTTP API's secrets.
#[derive(Debug, Clone, Args)]
pub(crate) struct HttpSecretArgs {
    /// The HS256 key user tokens are signed with (at least 32 bytes). Prefer
    /// the environment variable: a flag is visible to other local users.
    #[arg(
        long,
        env = "MESSAGING_HTTP_USER_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) user_key: Option<String>,
}

/// `messaging serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on. Anything but loopback exposes the API: put a
    /// TLS-terminating proxy in front.
    #[arg(
        long,
        env = "MESSAGING_HTTP_BIND",
        default_value = "127.0.0.1:8080",
        value_name = "ADDR"
    )]
    pub(crate) bind: SocketAddr,
    #[command(flatten)]
    pub(crate) secrets: HttpSecretArgs,
    /// The operator API's bearer token (at least 32 bytes). Prefer the
    /// environment variable.
    #[arg(
        long,
        env = "MESSAGING_HTTP_ADMIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) admin_token: Option<String>,
    /// An origin allowed by CORS (`https://app.example.com`), repeatable or
    /// comma-separated; none by default (CORS closed).
    #[arg(
        long = "cors-origin",
        env = "MESSAGING_HTTP_CORS_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub(crate) cors_origins: Vec<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = messaging_http::DEFAULT_BODY_LIMIT, value_name = "BYTES")]
    pub(crate) body_limit: usize,
    #[command(flatten)]
    pub(crate) webhooks: WebhookArgs,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
}

/// What turns on `serve`'s webhook endpoints (each off without its secret).
#[derive(Debug, Clone, Args)]
pub(crate) struct WebhookArgs {
    /// The one-click unsubscribe key (the worker's `[preferences.unsubscribe]`
    /// key): takes `POST /v1/webhooks/unsubscribe?token=…`.
    #[arg(
        long,
        env = "MESSAGING_UNSUBSCRIBE_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) unsubscribe_key: Option<String>,
    /// Mailgun's webhook signing key: takes `POST /v1/webhooks/mailgun`.
    #[arg(
        long,
        env = "MESSAGING_MAILGUN_SIGNING_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) mailgun_signing_key: Option<String>,
    /// SendGrid's Event Webhook verification key (base64 DER, as SendGrid
    /// shows it): takes `POST /v1/webhooks/sendgrid`.
    #[arg(
        long,
        env = "MESSAGING_SENDGRID_PUBLIC_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub(crate) sendgrid_public_key: Option<String>,
    /// Postmark's webhook basic-auth credentials, `user:password`: takes
    /// `POST /v1/webhooks/postmark`.
    #[arg(
        long,
        env = "MESSAGING_POSTMARK_CREDENTIALS",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub(crate) postmark_credentials: Option<String>,
    /// Twilio's auth token: takes `POST /v1/webhooks/twilio` (with
    /// --twilio-callback-url).
    #[arg(
        long,
        env = "MESSAGING_TWILIO_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        requires = "twilio_callback_url"
    )]
    pub(crate) twilio_auth_token: Option<String>,
    /// The status callback URL configured at Twilio, without its query (the
    /// public URL of `/v1/webhooks/twilio`): Twilio signs it.
    #[arg(
        long,
        env = "MESSAGING_TWILIO_CALLBACK_URL",
        value_name = "URL",
        requires = "twilio_auth_token"
    )]
    pub(crate) twilio_callback_url: Option<String>,
    /// The SNS topics whose SES notifications to take at `POST
    /// /v1/webhooks/ses` (ARNs, comma-separated in the environment): each
    /// message's SNS signature is checked with the certificate it names,
    /// fetched over HTTPS from `sns.<region>.amazonaws.com` only and kept.
    #[arg(
        long = "ses-topic-arn",
        env = "MESSAGING_SES_TOPIC_ARNS",
        value_delimiter = ',',
        value_name = "ARN"
    )]
    pub(crate) ses_topic_arns: Vec<String>,
}

/// `messaging token`.
#[derive(Debug, Args)]
pub(crate) struct TokenArgs {
    /// The user id (the token's `sub`).
    pub(crate) user: String,
    /// How long the token is valid (`15m`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) ttl: Duration,
    #[command(flatten)]
    pub(crate) secrets: HttpSecretArgs,
}

/// `messaging cancel`.
#[derive(Debug, Args)]
pub(crate) struct CancelArgs {
    /// The topic.
    pub(crate) topic: String,
    /// The message id (the UUID `publish` printed).
    pub(crate) id: String,
    /// `{"topic", "id", "cancelled"}` on stdout, exit code 0 either way.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// Where the shared messaging backend is.
#[derive(Debug, Clone, Args)]
pub(crate) struct BackendArgs {
    /// Redis URL of the shared backend (`redis://host:6379/0`; a Redis Cluster as
    /// `redis+cluster://host1:port,host2:port`). Its value is never
    /// shown in the help, as it may hold a password.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) share one Redis
    /// [default: messaging].
    #[arg(
        long,
        global = true,
        env = "MESSAGING_KEY_PREFIX",
        value_name = "PREFIX"
    )]
    pub(crate) key_prefix: Option<String>,
}

/// Where the notification history is.
#[derive(Debug, Clone, Args)]
pub(crate) struct DatabaseArgs {
    /// PostgreSQL URL of the notification store (`postgres://user@host/db`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// PostgreSQL schema holding the notification tables [default: public].
    #[arg(long, env = "MESSAGING_DB_SCHEMA", value_name = "SCHEMA")]
    pub(crate) db_schema: Option<String>,
}

/// `messaging worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// TOML configuration file (see config/messaging.example.toml); flags and
    /// environment variables override it.
    #[arg(long, short, env = "MESSAGING_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// Address of the Prometheus endpoint (`/metrics`) [default: 127.0.0.1:9464].
    #[arg(long, env = "MESSAGING_METRICS_ADDR", value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Do not serve metrics.
    #[arg(long, conflicts_with = "metrics_addr")]
    pub(crate) no_metrics: bool,
    /// Handlers running at once per subscription.
    #[arg(long, value_name = "N")]
    pub(crate) concurrency: Option<usize>,
    /// This replica's consumer name; keep it stable across restarts
    /// [default: $HOSTNAME-PID].
    #[arg(long, env = "MESSAGING_CONSUMER", value_name = "NAME")]
    pub(crate) consumer: Option<String>,
}

/// `messaging publish`.
#[derive(Debug, Args)]
pub(crate) struct PublishArgs {
    /// The topic (`user.registered`).
    pub(crate) topic: String,
    /// The payload: a JSON object, or `-` to read it from stdin.
    #[arg(long, value_name = "JSON")]
    pub(crate) json: String,
    /// Deliver after this delay (`30s`, `5m`, `1h 30m`).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) delay: Option<Duration>,
    /// Metadata entry, repeatable (`--meta tenant=acme`).
    #[arg(long = "meta", value_parser = parse_key_value, value_name = "KEY=VALUE")]
    pub(crate) metadata: Vec<(String, String)>,
    /// Retries allowed before the message is dead-lettered [default: 3].
    #[arg(long, value_name = "N")]
    pub(crate) max_retry: Option<u32>,
    /// The message's priority on a priority topic: high, normal or low.
    #[arg(long, value_parser = clap::value_parser!(messaging_core::priority::Priority), value_name = "PRIORITY")]
    pub(crate) priority: Option<messaging_core::priority::Priority>,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// `messaging tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The topic.
    pub(crate) topic: String,
    /// Exit after this many messages.
    #[arg(long, short = 'n', value_name = "N")]
    pub(crate) count: Option<u64>,
    /// Give up (exit code 5) when --count messages have not arrived in this time.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Option<Duration>,
    /// One JSON object per line (the whole message) instead of a summary line.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// `messaging topics`.
#[derive(Debug, Args)]
pub(crate) struct TopicsArgs {
    #[command(subcommand)]
    pub(crate) action: TopicsAction,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// What to do with topics.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsAction {
    /// Every topic, one per line.
    List {
        /// A JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// Create a topic (creating an existing one is not an error).
    Create {
        /// The topic.
        topic: String,
        /// Spread the topic over this many partitions (streams `TOPIC#0` …, on a
        /// Redis Cluster spread over the masters); messages with one partition
        /// key keep their order. Fixed once created.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..1024))]
        partitions: u16,
        /// Make it a priority topic: three lanes (high, normal, low; a message's
        /// `priority` metadata, `messaging publish --priority`); consumers take
        /// high first and still move the others (docs/flow-control.md). Fixed
        /// once created.
        #[arg(long, conflicts_with = "partitions")]
        priorities: bool,
    },
    /// Delete a topic with its groups, scheduled and dead-lettered messages.
    Delete {
        /// The topic.
        topic: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Pause a topic for one consumer group, or for every group: within about
    /// a second its consumers, in every process, take nothing new; running
    /// handlers finish; messages wait in the topic (nothing is lost).
    Pause {
        /// The topic.
        topic: String,
        /// Only this consumer group [default: every group of the topic].
        #[arg(long)]
        group: Option<String>,
        /// `{"topic", "group", "changed", "paused"}` on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused topic: one group's own pause, or (without `--group`)
    /// every pause of the topic. Consumers take the waiting messages again.
    Resume {
        /// The topic.
        topic: String,
        /// Only this consumer group's own pause [default: every pause of the topic].
        #[arg(long)]
        group: Option<String>,
        /// `{"topic", "group", "changed", "paused"}` on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `messaging stats`.
#[derive(Debug, Args)]
pub(crate) struct StatsArgs {
    /// Only these topics [default: every topic].
    pub(crate) topics: Vec<String>,
    /// JSON for scripts instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// `messaging dlq`.
#[derive(Debug, Args)]
pub(crate) struct DlqArgs {
    #[command(subcommand)]
    pub(crate) action: DlqAction,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// What to do with a dead-letter queue.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqAction {
    /// The dead letters of a topic, oldest first.
    List {
        /// The topic.
        topic: String,
        /// Show at most this many.
        #[arg(long, default_value_t = 100, value_name = "N")]
        limit: usize,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One dead letter in full (JSON).
    Show {
        /// The topic.
        topic: String,
        /// The dead letter's id (from `dlq list`).
        id: String,
    },
    /// Put dead letters back into the topic for the group that gave up on them.
    Replay {
        /// The topic.
        topic: String,
        /// Only this dead letter.
        #[arg(conflicts_with = "all", required_unless_present = "all")]
        id: Option<String>,
        /// Every dead letter of the topic (a progress bar on a terminal).
        #[arg(long)]
        all: bool,
    },
    /// Remove every dead letter of a topic.
    Purge {
        /// The topic.
        topic: String,
        /// Confirm: this cannot be undone.
        #[arg(long)]
        yes: bool,
    },
}

/// `messaging inbox`.
#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    /// The user id.
    pub(crate) user: String,
    /// Only unread notifications.
    #[arg(long)]
    pub(crate) unread: bool,
    /// Show at most this many (1 to 100).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub(crate) limit: u32,
    /// Also show every delivery attempt of each notification (time, provider,
    /// outcome, duration, error).
    #[arg(long)]
    pub(crate) attempts: bool,
    /// JSON for scripts instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
}

/// `messaging suppressions`.
#[derive(Debug, Args)]
pub(crate) struct SuppressionsArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) action: SuppressionsAction,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
}

/// The channels a suppression applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SuppressionChannel {
    /// Email addresses.
    Email,
    /// Phone numbers (SMS).
    Sms,
    /// Device tokens (push).
    Push,
}

impl SuppressionChannel {
    /// The channel as the store names it.
    pub(crate) fn kind(self) -> messaging_model::NotificationKind {
        match self {
            Self::Email => messaging_model::NotificationKind::Email,
            Self::Sms => messaging_model::NotificationKind::Sms,
            Self::Push => messaging_model::NotificationKind::Push,
        }
    }
}

/// `messaging suppressions list|remove`.
#[derive(Debug, Subcommand)]
pub(crate) enum SuppressionsAction {
    /// List the suppressed addresses (channel, address, reason, since, detail).
    List {
        /// Only this channel's.
        #[arg(long, value_enum)]
        channel: Option<SuppressionChannel>,
        /// JSON for scripts instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Lift the suppression of ADDRESS (and forget its soft bounces); exit code
    /// 4 when it was not suppressed.
    Remove {
        /// The address (email address, phone number or device token).
        address: String,
        /// The channel it is suppressed for.
        #[arg(long, value_enum, default_value = "email")]
        channel: SuppressionChannel,
    },
}

/// `messaging demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Run on this Redis instead of the in-memory backend.
    #[arg(long, value_name = "URL", requires = "database")]
    pub(crate) redis: Option<String>,
    /// Record notifications in this PostgreSQL instead of in memory.
    #[arg(long, value_name = "URL", requires = "redis")]
    pub(crate) database: Option<String>,
    /// Also append the emails sent to this file (mbox-like, one after another).
    #[arg(long, value_name = "FILE")]
    pub(crate) mail_file: Option<PathBuf>,
}

/// `messaging relay`.
#[derive(Debug, Args)]
pub(crate) struct RelayArgs {
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    #[command(flatten)]
    pub(crate) database: DatabaseArgs,
    /// Schema of the outbox table [default: --db-schema, else the search_path].
    #[arg(long, env = "MESSAGING_OUTBOX_SCHEMA", value_name = "SCHEMA")]
    pub(crate) outbox_schema: Option<String>,
    /// Most rows published per round (1 to 10000).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub(crate) batch_size: usize,
    /// How often an idle relay looks again when no NOTIFY woke it.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) poll_interval: Duration,
    /// How long published rows are kept; `0s` deletes them when published.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) retention: Duration,
    /// Do not LISTEN for the writers' notifications: poll only.
    #[arg(long)]
    pub(crate) no_listen: bool,
    /// Create the outbox table (apply the outbox migrations) before starting.
    #[arg(long)]
    pub(crate) migrate: bool,
}

/// `messaging schedules`.
#[derive(Debug, Args)]
pub(crate) struct SchedulesArgs {
    #[command(subcommand)]
    pub(crate) action: SchedulesAction,
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
}

/// What to do with schedules.
#[derive(Debug, Subcommand)]
pub(crate) enum SchedulesAction {
    /// Every schedule with its next and last tick.
    List {
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a schedule, or replace the one with its name.
    Add {
        /// The schedule's name (1 to 128 of [A-Za-z0-9._-]).
        name: String,
        /// Where each tick's message goes.
        #[arg(long)]
        topic: String,
        /// A cron expression: `sec min hour day month weekday` (seconds optional).
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// A fixed interval instead (`30s`, `5m`), ticking at whole multiples of it.
        #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
        every: Option<Duration>,
        /// IANA time zone of the cron expression.
        #[arg(long, default_value = "UTC", value_name = "ZONE")]
        tz: String,
        /// Each tick's payload, a JSON object.
        #[arg(long, default_value = "{}", value_name = "JSON")]
        payload: String,
        /// Ticks missed while no scheduler ran: `skip` or `catch_up_one`.
        #[arg(long, default_value = "skip", value_parser = parse_missed)]
        missed: messaging_core::schedule::MissedTicks,
    },
    /// Remove a schedule.
    Remove {
        /// The schedule's name.
        name: String,
    },
    /// Pause a schedule: its ticks are missed until it is resumed.
    Pause {
        /// The schedule's name.
        name: String,
    },
    /// Resume a paused schedule.
    Resume {
        /// The schedule's name.
        name: String,
    },
}

fn parse_missed(text: &str) -> Result<messaging_core::schedule::MissedTicks, String> {
    use messaging_core::schedule::MissedTicks;
    [MissedTicks::Skip, MissedTicks::CatchUpOne]
        .into_iter()
        .find(|missed| missed.as_str() == text)
        .ok_or_else(|| format!("expected skip or catch_up_one, got {text:?}"))
}

/// `messaging scheduler`.
#[derive(Debug, Args)]
pub(crate) struct SchedulerArgs {
    #[command(flatten)]
    pub(crate) backend: BackendArgs,
    /// How often schedules are re-read (changes and pauses show within this).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) refresh: Duration,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// A `--log` filter that `tracing_subscriber` accepts; anything else is a usage
/// error (exit 2) instead of being replaced by `warn` silently.
fn parse_log_filter(text: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("not a log filter ({error})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn metadata_needs_a_key() {
        assert_eq!(
            parse_key_value("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_key_value("=x").is_err());
        assert!(parse_key_value("novalue").is_err());
    }
}

//! `messaging serve`: the HTTP API (`messaging-http`) over the shared Redis
//! backend and the PostgreSQL notification store; `messaging token`: a user
//! token for trying it.

use std::sync::Arc;

use anyhow::Context;
use messaging_core::MessagingService;
use messaging_http::{AppState, HttpConfig, InboxEvents, UserTokens};

use crate::cli::{HttpSecretArgs, ServeArgs, TokenArgs};
use crate::exit::CliError;

/// The user token key, which both commands need.
fn user_key(secrets: &HttpSecretArgs) -> Result<&str, CliError> {
    secrets
        .user_key
        .as_deref()
        .filter(|key| !key.is_empty())
        .ok_or(CliError::MissingSecret {
            what: "the user token key",
            flag: "--user-key",
            env: "MESSAGING_HTTP_USER_KEY",
        })
}

/// Serves the API until SIGTERM or Ctrl-C; refuses to start without both secrets.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let user_key = user_key(&args.secrets)?;
    let admin_token = args
        .admin_token
        .as_deref()
        .filter(|token| !token.is_empty())
        .ok_or(CliError::MissingSecret {
            what: "the admin token",
            flag: "--admin-token",
            env: "MESSAGING_HTTP_ADMIN_TOKEN",
        })?;
    let config = HttpConfig::new(user_key, admin_token)?
        .with_allowed_origins(&args.cors_origins)?
        .with_body_limit(args.body_limit);
    let Some(url) = args.database.database_url.as_deref() else {
        return Err(CliError::InvalidSetting {
            name: "--database-url".into(),
            reason: "serve reads the inboxes from PostgreSQL: pass --database-url URL or set DATABASE_URL"
                .into(),
        }
        .into());
    };
    let messaging = Arc::new(MessagingService::new(
        crate::backend::shared_redis(&args.backend, "serve").await?,
    ));
    let store =
        crate::pipeline::connect_postgres(url, args.database.db_schema.as_deref(), None).await?;
    store.migrate().await?;
    let events = InboxEvents::new();
    let listener = store
        .inbox_listener()
        .await
        .context("listening to inbox changes")?;
    let following = tokio::spawn(events.clone().follow(listener));
    let state = AppState::new(messaging, Arc::new(store.clone()), events, config)?;
    let socket = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = socket.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "the HTTP API listens beyond loopback: serve it behind TLS");
    }
    let shutdown = super::shutdown_signal();
    // Scripts and tests wait for this line.
    eprintln!("serve ready {addr}");
    let closing = state.clone();
    let served = axum::serve(socket, messaging_http::router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            eprintln!("stopping: closing event streams, finishing requests");
            closing.close_event_streams();
        })
        .await;
    following.abort();
    store.close().await;
    served.context("serving HTTP")
}

/// Prints a user token for `args.user`.
pub(crate) fn token(args: TokenArgs) -> anyhow::Result<()> {
    let tokens = UserTokens::new(
        user_key(&args.secrets)?.as_bytes(),
        std::time::Duration::ZERO,
    )?;
    if args.user.trim().is_empty() || args.user.len() > messaging_http::MAX_USER_ID_LEN {
        return Err(CliError::InvalidSetting {
            name: "USER".into(),
            reason: "a user id of 1 to 256 bytes".into(),
        }
        .into());
    }
    println!("{}", tokens.mint(&args.user, args.ttl)?);
    Ok(())
}

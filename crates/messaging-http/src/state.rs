//! [`AppState`]: what every handler shares.

use std::sync::Arc;

use messaging_core::MessagingService;
use messaging_core::schedule::ScheduleBackend;
use notification_store::NotificationStore;
use tokio_util::sync::CancellationToken;

use crate::auth::{AdminToken, UserTokens};
use crate::events::InboxEvents;
use crate::webhooks::Webhooks;
use crate::{HttpConfig, ServeError};

/// The messaging service, the notification store, the token checkers and the
/// fan-out of inbox events: cheap to clone (one `Arc`).
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    messaging: Arc<MessagingService>,
    store: Arc<dyn NotificationStore>,
    user_tokens: UserTokens,
    admin_token: AdminToken,
    events: InboxEvents,
    config: HttpConfig,
    webhooks: Webhooks,
    schedules: Option<Arc<dyn ScheduleBackend>>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("messaging", &self.messaging)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The state over `messaging` (the operator API) and `store` (the inbox),
    /// pushing what `events` hears to event streams.
    pub fn new(
        messaging: Arc<MessagingService>,
        store: Arc<dyn NotificationStore>,
        events: InboxEvents,
        config: HttpConfig,
    ) -> Result<Self, ServeError> {
        Ok(Self {
            inner: Arc::new(Inner {
                messaging,
                store,
                user_tokens: UserTokens::new(&config.user_key, config.token_leeway)?,
                admin_token: AdminToken::new(&config.admin_token),
                events,
                config,
                webhooks: Webhooks::default(),
                schedules: None,
                shutdown: CancellationToken::new(),
            }),
        })
    }

    /// Turns on the webhook endpoints `webhooks` configures (none by default).
    pub fn with_webhooks(mut self, webhooks: Webhooks) -> Self {
        Arc::make_mut(&mut self.inner).webhooks = webhooks;
        self
    }

    /// Serves the schedules of `schedules` under `/v1/admin/schedules`
    /// (404 without).
    pub fn with_schedules(mut self, schedules: Arc<dyn ScheduleBackend>) -> Self {
        Arc::make_mut(&mut self.inner).schedules = Some(schedules);
        self
    }

    /// The schedule backend, if any.
    pub(crate) fn schedules(&self) -> Option<&dyn ScheduleBackend> {
        self.inner.schedules.as_deref()
    }

    /// The webhooks' configuration.
    pub(crate) fn webhooks(&self) -> &Webhooks {
        &self.inner.webhooks
    }

    /// The messaging service.
    pub fn messaging(&self) -> &MessagingService {
        &self.inner.messaging
    }

    /// The notification store.
    pub fn store(&self) -> &dyn NotificationStore {
        self.inner.store.as_ref()
    }

    /// Signs and checks user tokens.
    pub fn user_tokens(&self) -> &UserTokens {
        &self.inner.user_tokens
    }

    /// The operator token.
    pub(crate) fn admin_token(&self) -> &AdminToken {
        &self.inner.admin_token
    }

    /// The fan-out of inbox events.
    pub fn events(&self) -> &InboxEvents {
        &self.inner.events
    }

    /// The configuration.
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    /// Ends every open event stream (a graceful shutdown waits for open
    /// connections, and an event stream never ends by itself).
    pub fn close_event_streams(&self) {
        self.inner.shutdown.cancel();
    }

    /// Cancelled by [`close_event_streams`](Self::close_event_streams).
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.inner.shutdown
    }
}

//! What the API tests share: a real server on a free loopback port over the
//! Redis and PostgreSQL of the environment, in a key prefix and a schema of
//! its own, removed at the end; an HTTP client; a reader of event streams.

#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::sync::Arc;
use std::time::Duration;

use messaging_core::MessagingService;
use messaging_http::{AppState, HttpConfig, InboxEvents, UserTokens};
use messaging_model::{Notification, NotificationKind};
use messaging_redis::{RedisBackend, RedisBackendConfig};
use notification_store::NotificationStore;
use notification_store_postgres::{PostgresStore, PostgresStoreConfig};
use serde_json::Value;

pub use messaging_test_support::{database_url, redis_url};

/// How long any wait of a test may last before it fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The user token key of every test server.
pub const USER_KEY: &str = "test-user-key-0123456789abcdef0123456789";
/// The admin token of every test server.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef0123";

/// A running server and what it runs over.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// A client without default headers.
    pub http: reqwest::Client,
    /// The store the server reads (the test's schema).
    pub store: PostgresStore,
    /// A service on the test's Redis prefix, for set-up and checks.
    pub messaging: Arc<MessagingService>,
    /// Signs user tokens with the server's key.
    pub tokens: UserTokens,
    /// The test's PostgreSQL schema.
    pub schema: String,
    /// The `application_name` of the server's PostgreSQL connections (its
    /// listener's included): the test's key prefix.
    pub application_name: String,
    /// The schedules of the test's Redis prefix.
    pub schedules: Arc<dyn messaging_core::schedule::ScheduleBackend>,
    state: AppState,
    served: tokio::task::JoinHandle<()>,
    following: tokio::task::JoinHandle<()>,
}

impl Server {
    /// A server with the default config.
    pub async fn start() -> Self {
        Self::start_with(|config| config).await
    }

    /// A server with `adjust` applied to its config.
    pub async fn start_with(adjust: impl FnOnce(HttpConfig) -> HttpConfig) -> Self {
        Self::start_configured(adjust, |_| messaging_http::Webhooks::default()).await
    }

    /// A server with `adjust` applied to its config and the webhooks `webhooks`
    /// makes over the test's store.
    pub async fn start_configured(
        adjust: impl FnOnce(HttpConfig) -> HttpConfig,
        webhooks: impl FnOnce(&PostgresStore) -> messaging_http::Webhooks,
    ) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let prefix = format!("http-{id}");
        let schema = format!("http_{id}");
        let backend =
            RedisBackend::connect(RedisBackendConfig::new(redis_url()).with_key_prefix(&prefix))
                .await
                .unwrap_or_else(|error| {
                    panic!("cannot reach Redis at REDIS_URL ({error}): start Redis 7")
                });
        // Partitioned topics routed, as `messaging serve` does.
        let backend = Arc::new(messaging_core::Partitioned::new(backend));
        let schedules: Arc<dyn messaging_core::schedule::ScheduleBackend> = backend.clone();
        let messaging = Arc::new(MessagingService::new(backend));
        let store = PostgresStore::connect(
            PostgresStoreConfig::new(database_url())
                .with_schema(&schema)
                .with_max_connections(4)
                .with_application_name(&prefix),
        )
        .await
        .unwrap_or_else(|error| panic!("cannot reach PostgreSQL at DATABASE_URL ({error})"));
        store.migrate().await.expect("the store migrates");
        let events = InboxEvents::new();
        let listener = store
            .inbox_listener()
            .await
            .expect("the inbox listener starts");
        let following = tokio::spawn(events.clone().follow(listener));
        let config = adjust(HttpConfig::new(USER_KEY, ADMIN_TOKEN).unwrap());
        let state = AppState::new(messaging.clone(), Arc::new(store.clone()), events, config)
            .unwrap()
            .with_webhooks(webhooks(&store))
            .with_schedules(schedules.clone());
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", socket.local_addr().unwrap());
        let router = messaging_http::router(state.clone());
        let served = tokio::spawn(async move {
            axum::serve(socket, router).await.expect("the server runs");
        });
        Self {
            base,
            http: reqwest::Client::builder().build().unwrap(),
            store,
            messaging,
            tokens: UserTokens::new(USER_KEY.as_bytes(), Duration::from_secs(30)).unwrap(),
            schema,
            application_name: prefix.clone(),
            schedules,
            state,
            served,
            following,
        }
    }

    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        self.tokens.mint(user, Duration::from_secs(3600)).unwrap()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with a bearer token.
    pub fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// `GET path` as `token`: status and JSON body (`null` when none).
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::GET, path, token)).await
    }

    /// `POST path` as `token`: status and JSON body.
    pub async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::POST, path, token)).await
    }

    /// `DELETE path` as `token`: status and JSON body.
    pub async fn delete(&self, path: &str, token: &str) -> (u16, Value) {
        send(self.request(reqwest::Method::DELETE, path, token)).await
    }

    /// Records a notification for `user` (in-app unless `kind` says otherwise).
    pub async fn record(&self, user: &str, kind: NotificationKind, title: &str) -> Notification {
        let notification = Notification::new(user, kind, title, format!("{title} body"));
        self.store.record(&notification).await.unwrap();
        notification
    }

    /// `(is_read, count)` of `user`'s rows, straight from PostgreSQL.
    pub async fn rows_of(&self, user: &str) -> Vec<(uuid::Uuid, bool)> {
        let sql = format!(
            "SELECT id, is_read FROM {}.notifications WHERE user_id = $1 ORDER BY id",
            self.schema
        );
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(user)
            .fetch_all(self.store.pool())
            .await
            .unwrap()
    }

    /// Stops the server and removes the test's Redis keys and schema.
    pub async fn cleanup(self) {
        self.state.close_event_streams();
        self.served.abort();
        self.following.abort();
        self.messaging.shutdown().await;
        for schedule in self.schedules.schedules().await.unwrap_or_default() {
            let _ = self
                .schedules
                .remove_schedule(&schedule.schedule.name)
                .await;
        }
        for topic in self.messaging.list_topics().await.unwrap_or_default() {
            let _ = self.messaging.delete_topic(&topic).await;
        }
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema);
        sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
            .execute(self.store.pool())
            .await
            .expect("the test schema is dropped");
        self.store.close().await;
    }
}

/// Runs `test` against a fresh [`Server`] and cleans up, even when it fails.
pub async fn run<F>(test: F)
where
    F: for<'a> FnOnce(&'a Server) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    run_on(Server::start().await, test).await;
}

/// [`run`] on a server already started.
pub async fn run_on<F>(server: Server, test: F)
where
    F: for<'a> FnOnce(&'a Server) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>>,
{
    use futures::FutureExt;
    let outcome = std::panic::AssertUnwindSafe(test(&server))
        .catch_unwind()
        .await;
    server.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Sends a request: status and JSON body (`null` when empty), failing the
/// test when an error body is not a problem document.
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let text = response.text().await.unwrap();
    if status >= 400 {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "status {status} without a problem document: {text}"
        );
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["title"].is_string() && problem["type"].is_string(),
            "{problem}"
        );
    }
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// One Server-Sent Event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// `event:`.
    pub event: String,
    /// `data:`, parsed as JSON.
    pub data: Value,
    /// `id:`.
    pub id: Option<String>,
}

/// Reads events off an open `text/event-stream` response.
pub struct SseReader {
    response: reqwest::Response,
    /// Bytes as they came: a chunk may end inside a character.
    buffer: Vec<u8>,
}

impl SseReader {
    /// Opens `GET /v1/me/events` as `token`; panics unless it is a 200 event stream.
    pub async fn open(server: &Server, token: &str) -> Self {
        let response = server
            .request(reqwest::Method::GET, "/v1/me/events", token)
            .send()
            .await
            .expect("the server answers");
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()[reqwest::header::CONTENT_TYPE],
            "text/event-stream"
        );
        Self::from_response(response)
    }

    /// Over a response already checked.
    pub fn from_response(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: Vec::new(),
        }
    }

    /// The next event (comments skipped), waiting up to [`DEADLINE`].
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(DEADLINE, self.next_event())
            .await
            .expect("an event arrives on the stream")
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str) -> SseEvent {
        loop {
            let event = self.next().await;
            if event.event == name {
                return event;
            }
        }
    }

    /// The `notification` event of notification `id`, and the other
    /// `notification` events read before it (a notification recorded just
    /// before the stream opened may be pushed too: streams are at least once).
    pub async fn until_notification(&mut self, id: uuid::Uuid) -> (SseEvent, Vec<SseEvent>) {
        let mut before = Vec::new();
        loop {
            let event = self.next_named("notification").await;
            if event.data["id"] == id.to_string() {
                return (event, before);
            }
            before.push(event);
        }
    }

    async fn next_event(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|pair| pair == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let block = String::from_utf8(block).expect("an event is UTF-8");
                let mut event = String::from("message");
                let mut data = String::new();
                let mut id = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = Some(value.trim().to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return SseEvent {
                    event,
                    data: serde_json::from_str(&data).unwrap_or(Value::String(data)),
                    id,
                };
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the stream reads")
                .expect("the stream stays open");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

impl Server {
    /// Marks a notification read straight in the store.
    pub async fn store_mark_read(&self, user: &str, id: uuid::Uuid) {
        self.store.mark_read(user, id).await.unwrap();
    }
}

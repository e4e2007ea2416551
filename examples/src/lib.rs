//! Runnable examples of the suite's main uses (not published). Each is one
//! file under `examples/examples/`:
//!
//! * `redis_pubsub`: publish and consume under a consumer group on Redis
//!   (`REDIS_URL`, default `redis://127.0.0.1:6379`), with a retry;
//! * `worker_templates`: a `user.registered` event becomes a welcome email
//!   rendered from a template you supply, sent over SMTP to an in-process
//!   server, recorded in the inbox;
//! * `inbox`: a user's inbox in PostgreSQL (`DATABASE_URL`, default
//!   `postgres://postgres@127.0.0.1:5432/test`): newest first, pages, unread
//!   count, mark read.
//!
//! ```sh
//! cargo run -p messaging-examples --example redis_pubsub
//! cargo run -p messaging-examples --example worker_templates
//! cargo run -p messaging-examples --example inbox
//! ```
//!
//! `make test` runs all three after the test suite (`make examples`).

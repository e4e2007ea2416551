//! The store conformance suite of the `notification` crate, against PostgreSQL:
//! every test in a schema of its own, dropped at the end.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p notification-store-postgres --test conformance
//! ```

mod common;

use common::{store, teardown};

notification::store_conformance_tests!(store, teardown = teardown);

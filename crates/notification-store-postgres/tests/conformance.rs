//! The store conformance suite of `notification-store`, against PostgreSQL:
//! every test in a schema of its own, dropped at the end; the notification half
//! twice, with group commit (the default) and with one commit per write.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p notification-store-postgres --test conformance
//! ```

mod common;

use common::{store, teardown};

notification_store::store_conformance_tests!(store, teardown = teardown);
notification_store::preference_store_conformance_tests!(store, teardown = teardown);
notification_store::digest_store_conformance_tests!(store, teardown = teardown);

mod one_commit_per_write {
    use super::common::{store_without_group_commit, teardown};

    notification_store::notification_store_conformance_tests!(
        store_without_group_commit,
        teardown = teardown
    );
}

notification_store::suppression_store_conformance_tests!(store, teardown = teardown);
notification_store::delivery_report_store_conformance_tests!(store, teardown = teardown);

mod reports_one_commit_per_write {
    use super::common::{store_without_group_commit, teardown};

    notification_store::delivery_report_store_conformance_tests!(
        store_without_group_commit,
        teardown = teardown
    );
}

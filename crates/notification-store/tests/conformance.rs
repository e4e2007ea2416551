//! The store conformance suite (`testsuite`) against the in-memory stores.
//!
//! Run with `cargo test -p notification-store --features testsuite --test conformance`
//! (`make test` turns every feature on).

use notification_store::{
    InMemoryDigestStore, InMemoryNotificationStore, InMemoryPreferenceStore, InMemoryTemplateStore,
};

/// A fresh, empty store: in memory, nothing to tear down.
async fn notification_store() -> InMemoryNotificationStore {
    InMemoryNotificationStore::new()
}

/// A fresh, empty store.
async fn template_store() -> InMemoryTemplateStore {
    InMemoryTemplateStore::new()
}

notification_store::notification_store_conformance_tests!(notification_store);
notification_store::template_store_conformance_tests!(template_store);

/// A fresh, empty suppression list.
async fn suppression_store() -> notification_store::InMemorySuppressionStore {
    notification_store::InMemorySuppressionStore::new()
}

notification_store::suppression_store_conformance_tests!(suppression_store);
notification_store::delivery_report_store_conformance_tests!(notification_store);
/// A fresh, empty store.
async fn preference_store() -> InMemoryPreferenceStore {
    InMemoryPreferenceStore::new()
}

notification_store::preference_store_conformance_tests!(preference_store);

/// A fresh, empty store.
async fn digest_store() -> InMemoryDigestStore {
    InMemoryDigestStore::new()
}

notification_store::digest_store_conformance_tests!(digest_store);

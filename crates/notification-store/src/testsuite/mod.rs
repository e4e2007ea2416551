//! The store conformance suite: every [`NotificationStore`] and [`TemplateStore`]
//! implementation must pass it.
//!
//! Each test is an async function taking a store by reference. A store crate turns
//! on this crate's `testsuite` feature in its dev-dependencies and stamps every test
//! out as a `#[tokio::test]` with one macro, in an integration test:
//!
//! ```ignore
//! // crates/my-store/tests/conformance.rs
//! // Cargo.toml: [dev-dependencies]
//! //   notification-store = { workspace = true, features = ["testsuite"] }
//! //   tokio = { workspace = true, features = ["rt-multi-thread", "macros"] }
//!
//! /// A fresh, empty store (for a database: its own schema, migrated).
//! async fn store() -> MyStore {
//!     MyStore::connect(/* own namespace */).await.unwrap()
//! }
//!
//! /// Called after every test, pass or fail: removes the store's namespace.
//! async fn teardown(store: &MyStore) {
//!     store.drop_namespace().await.unwrap();
//! }
//!
//! // One type implementing both traits:
//! notification_store::store_conformance_tests!(store, teardown = teardown);
//! ```
//!
//! A crate whose two stores are different types uses the two halves instead, each
//! with its own factory (`teardown = ...` is optional everywhere):
//!
//! ```ignore
//! notification_store::notification_store_conformance_tests!(notification_store);
//! notification_store::template_store_conformance_tests!(template_store);
//! ```
//!
//! The suppression list and provider reports have suites of their own,
//! stamped out the same way: `suppression_store_conformance_tests!(factory)`
//! for a [`SuppressionStore`] (per-channel isolation, address case, soft
//! bounces N in a window at explicit times, remove, list order) and
//! `delivery_report_store_conformance_tests!(factory)` for a
//! [`DeliveryReportStore`] that is also a [`NotificationStore`] (matching by
//! provider message id, report ranking).
//!
//! The macros expand to `mod notification_store_conformance` and
//! `mod template_store_conformance` in the calling module, so `store` and
//! `teardown` may be private functions next to the invocation. The calling crate
//! needs `tokio` with the `rt-multi-thread` and `macros` features: each test runs
//! on its own two-worker runtime, and the test body runs in a spawned task so the
//! teardown runs even when an assertion fails.
//!
//! What the suite expects of a factory:
//! * every call returns an **empty** store (no notifications, no templates): the
//!   purge and list tests count rows;
//! * nothing else; tests still use fresh random user ids, so stray rows of another
//!   user never change a result.
//!
//! What it pins down beyond the trait documentation:
//! * timestamps are kept to the **microsecond** (the precision of PostgreSQL and of
//!   [`InboxCursor::encode`](crate::InboxCursor::encode)): a store truncates sub-microsecond parts on record, so
//!   paging with an encoded cursor neither repeats nor skips a row;
//! * an inbox page holding the last row has `next_cursor: None`, even when it is full;
//! * a batch holding an id twice, or a key taken by a stored row, is a
//!   [`StoreError::Conflict`](crate::StoreError::Conflict) and stores none of its rows;
//! * a well-formed cursor or `since` far outside the database's time range gives a
//!   page or [`StoreError::InvalidInput`](crate::StoreError::InvalidInput), nothing else;
//! * `update_status` to `Sent` sets `sent_at`, to `Failed` sets `error`;
//! * `begin_attempt` is a compare-and-set on the attempt count; `record_attempt`
//!   applies `sent` from any attempt and `failed` / `unknown` only from the
//!   latest, and logs every attempt; attempts go when their notification goes;
//! * `mark_read` of a read notification and `mark_unread` of an unread one succeed
//!   and change nothing;
//! * template names and locales sort by byte value in `list`;
//! * a template id is unique: saving another (name, locale) under a taken id is a
//!   [`StoreError::Conflict`](crate::StoreError::Conflict);
//! * saving a new template keeps its `id` and `created_at`; the store sets
//!   `updated_at` on every save and deactivation, never earlier than before.
//!
//! No test depends on the wall clock: notifications carry fixed `created_at`s, and
//! the only time assertions are "set by the store, not copied from the input" and
//! "not earlier than before".

mod attempts;
mod digests;
mod fixtures;
mod held;
mod inbox;
mod isolation;
mod preferences;
mod read_state;
mod records;
mod reports;
mod suppressions;
mod templates;

pub use attempts::*;
pub use digests::*;
pub use held::*;
pub use inbox::*;
pub use isolation::*;
pub use preferences::*;
pub use read_state::*;
pub use records::*;
pub use reports::*;
pub use suppressions::*;
pub use templates::*;

#[allow(unused_imports)] // for the links in the macros' docs
use crate::{DeliveryReportStore, NotificationStore, SuppressionStore, TemplateStore};

/// Stamps out every test of both halves of the suite for one type implementing
/// [`NotificationStore`] and [`TemplateStore`]: see the [module docs](crate::testsuite).
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        $crate::notification_store_conformance_tests!($factory $(, teardown = $teardown)?);
        $crate::template_store_conformance_tests!($factory $(, teardown = $teardown)?);
    };
}

/// Stamps out every [`NotificationStore`] test of the suite: see the
/// [module docs](crate::testsuite).
#[macro_export]
macro_rules! notification_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod notification_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                record_then_get_returns_the_same_notification,
                get_of_an_unknown_id_is_not_found,
                recording_an_existing_id_is_a_conflict,
                metadata_nested_past_the_limit_is_refused_and_nothing_stored,
                idempotency_key_is_unique_per_user,
                record_batch_stores_every_notification,
                record_batch_with_a_conflict_stores_nothing,
                record_batch_of_nothing_is_a_no_op,
                update_status_to_sent_sets_sent_at,
                update_status_to_failed_records_the_error,
                update_status_of_an_unknown_id_is_not_found,
                begin_attempt_marks_sending_and_counts_attempts,
                begin_attempt_is_a_compare_and_set,
                record_attempt_logs_it_and_sets_the_status,
                a_late_report_of_an_older_attempt_never_overwrites_the_latest,
                attempts_are_the_users_own_and_go_with_their_notification,
                inbox_lists_the_users_notifications_newest_first,
                inbox_pages_through_ties_on_created_at_without_gaps_or_repeats,
                inbox_paging_with_encoded_cursors_keeps_microsecond_precision,
                page_holding_the_last_row_has_no_next_cursor,
                inbox_filters_by_kind,
                inbox_filters_unread_only,
                inbox_filters_since_inclusive,
                inbox_filters_combine_with_paging,
                inbox_rejects_page_size_zero_and_above_maximum,
                malformed_cursor_strings_are_rejected,
                cursor_far_outside_the_stored_range_is_answered_without_error_or_panic,
                unread_count_counts_only_unread,
                mark_read_sets_read_at_and_mark_unread_clears_it,
                mark_all_read_marks_every_unread_and_reports_how_many,
                delete_removes_only_that_notification,
                purge_deletes_notifications_created_before_the_cutoff,
                another_users_notification_cannot_be_read,
                another_users_notification_cannot_be_marked_read_or_unread,
                another_users_notification_cannot_be_deleted,
                mark_all_read_touches_only_the_callers_notifications,
                listing_with_another_users_cursor_and_filters_reveals_nothing_of_theirs,
                skipped_and_scheduled_notifications_are_kept_as_recorded,
                update_status_to_skipped_only_from_pending_or_scheduled,
                update_status_to_suppressed_only_from_pending_scheduled_or_failed,
                begin_attempt_of_a_scheduled_notification_marks_it_sending,
            );
        }
    };
}

/// Stamps out every [`TemplateStore`] test of the suite: see the
/// [module docs](crate::testsuite).
#[macro_export]
macro_rules! template_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod template_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                template_save_then_get_returns_it,
                template_get_of_an_unknown_name_or_locale_is_none,
                template_save_replaces_same_name_and_locale_keeping_id_and_created_at,
                template_locales_are_separate_variants,
                template_list_orders_by_name_then_locale_default_first,
                template_deactivate_marks_inactive_and_save_reactivates,
                template_deactivate_of_an_unknown_template_is_not_found,
                template_save_under_an_id_taken_by_another_template_is_a_conflict,
                template_with_an_empty_locale_is_rejected,
            );
        }
    };
}

/// Stamps out every [`SuppressionStore`] test of the suite: see the
/// [module docs](crate::testsuite).
#[macro_export]
macro_rules! suppression_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod suppression_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                suppression_is_per_channel_and_ignores_address_case,
                suppressing_again_keeps_the_first_suppression,
                soft_bounces_suppress_only_after_the_threshold_within_the_window,
                remove_lifts_a_suppression_and_forgets_soft_bounces,
                list_suppressions_filters_by_channel_in_order,
            );
        }
    };
}

/// Stamps out every [`PreferenceStore`](crate::PreferenceStore) test of the
/// suite: see the [module docs](crate::testsuite).
#[macro_export]
macro_rules! preference_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod preference_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                preferences_of_an_unknown_user_are_the_defaults,
                preference_opt_outs_are_kept_and_removed_exactly,
                preference_quiet_hours_are_kept_with_their_time_zone,
                another_users_preferences_can_be_neither_read_nor_changed,
                subscriber_ids_are_stable_and_unknown_ones_find_nobody,
                concurrent_preference_updates_all_take_effect,
            );
        }
    };
}

/// Stamps out every [`DeliveryReportStore`] test of the suite (the store must
/// also be a [`NotificationStore`]): see the [module docs](crate::testsuite).
#[macro_export]
macro_rules! delivery_report_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod delivery_report_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                a_report_updates_the_notification_and_its_attempt,
                a_report_of_an_unknown_provider_message_id_matches_nothing,
                a_lower_ranking_report_never_replaces_a_higher_one,
                the_accepted_provider_message_id_is_found_by_notification_id,
            );
        }
    };
}

/// Stamps out every [`DigestStore`](crate::DigestStore) test of the suite:
/// see the [module docs](crate::testsuite).
#[macro_export]
macro_rules! digest_store_conformance_tests {
    ($factory:path $(, teardown = $teardown:path)? $(,)?) => {
        mod digest_store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__store_conformance_each!($factory, [$($teardown)?];
                digest_events_join_one_open_window_once_each,
                a_digest_window_closes_once_and_the_next_event_opens_another,
                another_users_digest_window_cannot_be_closed,
                concurrent_digest_appends_land_in_one_window,
                a_full_digest_window_is_closed_by_the_next_event,
            );
        }
    };
}

/// One `#[tokio::test]` per suite function (internal to the macros above).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_each {
    ($factory:path, $teardown:tt; $($name:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = ::std::sync::Arc::new($factory().await);
                let in_task = ::std::sync::Arc::clone(&store);
                // In a task, so a failed assertion still reaches the teardown.
                let outcome = ::tokio::spawn(async move {
                    $crate::testsuite::$name(&*in_task).await;
                })
                .await;
                $crate::__store_conformance_teardown!($teardown, store);
                if let ::std::result::Result::Err(error) = outcome {
                    if error.is_panic() {
                        ::std::panic::resume_unwind(error.into_panic());
                    }
                    panic!("test task did not finish: {error}");
                }
            }
        )*
    };
}

/// Calls the optional teardown (internal to the macros above).
#[doc(hidden)]
#[macro_export]
macro_rules! __store_conformance_teardown {
    ([], $store:ident) => {};
    ([$teardown:path], $store:ident) => {
        $teardown(&*$store).await;
    };
}

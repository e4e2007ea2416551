//! The [`TemplateStore`] half of the suite.

use messaging_model::{MessageTemplate, TemplateKind};
use serde_json::json;

use crate::{StoreError, TemplateStore};

use super::fixtures::*;

/// What `save` returned and `get` gives back carry every field of the template;
/// `updated_at` is set by the store.
pub async fn template_save_then_get_returns_it<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let mut t = template(&fresh_name("welcome"), None);
    t.updated_at = at(0); // stale: the store replaces it
    let saved = store.save(&t).await.expect("save");
    assert!(saved.updated_at > at(0), "updated_at is set by the store");
    let mut expected = t.clone();
    expected.updated_at = saved.updated_at;
    assert_eq!(saved, expected);

    let got = TemplateStore::get_template(store, &t.name, None)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, saved);
}

/// An empty locale string is invalid input: it would otherwise shadow the
/// default (`None`) variant.
pub async fn template_with_an_empty_locale_is_rejected<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("blank");
    let saved = store.save(&template(&name, Some(""))).await;
    assert!(
        matches!(saved, Err(StoreError::InvalidInput { .. })),
        "an empty locale was accepted: {saved:?}"
    );
    assert_eq!(
        TemplateStore::get_template(store, &name, None)
            .await
            .expect("get"),
        None
    );
}

/// `get` of a missing name, or of a locale without a variant, is `None`.
pub async fn template_get_of_an_unknown_name_or_locale_is_none<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    assert_eq!(
        TemplateStore::get_template(store, &name, None)
            .await
            .expect("get"),
        None
    );
    store.save(&template(&name, None)).await.expect("save");
    assert_eq!(
        TemplateStore::get_template(store, &name, Some("fr"))
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        TemplateStore::get_template(store, &fresh_name("other"), None)
            .await
            .expect("get"),
        None
    );
}

/// Saving the same name and locale again replaces the content but keeps the first
/// id and `created_at`, and `updated_at` does not go back.
pub async fn template_save_replaces_same_name_and_locale_keeping_id_and_created_at<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("receipt");
    let mut first = template(&name, Some("en"));
    first.created_at = at(0);
    let first = store.save(&first).await.expect("save");

    let mut second = MessageTemplate::new(&name, TemplateKind::Sms, "Paid {{amount}}")
        .with_locale("en")
        .with_variables(["amount"]);
    second.is_active = false;
    second.metadata = json!({"version": 2});
    second.updated_at = at(1); // stale: the store replaces it
    let saved = store.save(&second).await.expect("save again");

    assert_eq!(saved.id, first.id, "the first id is kept");
    assert_eq!(saved.created_at, at(0), "the first created_at is kept");
    assert!(
        saved.updated_at >= first.updated_at,
        "updated_at does not go back"
    );
    assert!(saved.updated_at > at(1), "updated_at is set by the store");
    assert_eq!(saved.kind, TemplateKind::Sms);
    assert_eq!(saved.subject, None);
    assert_eq!(saved.content, "Paid {{amount}}");
    assert_eq!(saved.variables, vec!["amount".to_owned()]);
    assert!(!saved.is_active);
    assert_eq!(saved.metadata, json!({"version": 2}));

    let got = TemplateStore::get_template(store, &name, Some("en"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got, saved);
    let rows: Vec<_> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.name == name)
        .collect();
    assert_eq!(rows.len(), 1, "replaced, not added");
}

/// The default (no locale) and each locale are separate rows.
pub async fn template_locales_are_separate_variants<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    let mut default = template(&name, None);
    default.content = "Hello".into();
    let mut en = template(&name, Some("en"));
    en.content = "Hi".into();
    let mut pt = template(&name, Some("pt-BR"));
    pt.content = "Olá".into();
    for t in [&default, &en, &pt] {
        store.save(t).await.expect("save");
    }

    for (locale, content) in [(None, "Hello"), (Some("en"), "Hi"), (Some("pt-BR"), "Olá")] {
        let got = TemplateStore::get_template(store, &name, locale)
            .await
            .expect("get")
            .expect("present");
        assert_eq!(got.content, content);
        assert_eq!(got.locale.as_deref(), locale);
    }

    let mut en_again = template(&name, Some("en"));
    en_again.content = "Hey".into();
    store.save(&en_again).await.expect("save en again");
    let got = TemplateStore::get_template(store, &name, None)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(got.content, "Hello", "the default is untouched");
}

/// `list` returns every template by name, then locale with the default first.
pub async fn template_list_orders_by_name_then_locale_default_first<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let prefix = fresh_name("t");
    let a = format!("{prefix}_a");
    let b = format!("{prefix}_b");
    let rows = [
        template(&b, Some("en")),
        template(&a, Some("pt-BR")),
        template(&b, None),
        template(&a, Some("en")),
        template(&a, None),
        template(&a, Some("de")),
    ];
    for t in &rows {
        store.save(t).await.expect("save");
    }

    let listed: Vec<(String, Option<String>)> = store
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.name.starts_with(&prefix))
        .map(|t| (t.name, t.locale))
        .collect();
    let expected: Vec<(String, Option<String>)> = [
        (&a, None),
        (&a, Some("de")),
        (&a, Some("en")),
        (&a, Some("pt-BR")),
        (&b, None),
        (&b, Some("en")),
    ]
    .into_iter()
    .map(|(n, l)| (n.clone(), l.map(str::to_owned)))
    .collect();
    assert_eq!(listed, expected);
}

/// `deactivate` marks one variant inactive (it is still returned by `get`); saving
/// it active again reactivates it.
pub async fn template_deactivate_marks_inactive_and_save_reactivates<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    store.save(&template(&name, None)).await.expect("save");
    let en = store
        .save(&template(&name, Some("en")))
        .await
        .expect("save");

    store
        .deactivate(&name, Some("en"))
        .await
        .expect("deactivate");
    let got = TemplateStore::get_template(store, &name, Some("en"))
        .await
        .expect("get")
        .expect("inactive templates are still returned");
    assert!(!got.is_active);
    assert!(got.updated_at >= en.updated_at);
    let default = TemplateStore::get_template(store, &name, None)
        .await
        .expect("get")
        .expect("present");
    assert!(default.is_active, "other variants stay active");

    store
        .deactivate(&name, Some("en"))
        .await
        .expect("deactivate again");
    let reactivated = store
        .save(&template(&name, Some("en")))
        .await
        .expect("save");
    assert!(reactivated.is_active);
    assert_eq!(reactivated.id, en.id);
}

/// `deactivate` of a missing name or locale is `NotFound`.
pub async fn template_deactivate_of_an_unknown_template_is_not_found<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let name = fresh_name("welcome");
    assert_not_found(store.deactivate(&name, None).await, "unknown name");
    store.save(&template(&name, None)).await.expect("save");
    assert_not_found(store.deactivate(&name, Some("fr")).await, "unknown locale");
}

/// Saving a new (name, locale) under an id another template holds is a `Conflict`
/// and stores nothing.
pub async fn template_save_under_an_id_taken_by_another_template_is_a_conflict<S>(store: &S)
where
    S: TemplateStore + ?Sized,
{
    let first = store
        .save(&template(&fresh_name("first"), None))
        .await
        .expect("save");
    let mut second = template(&fresh_name("second"), None);
    second.id = first.id;
    assert_conflict(store.save(&second).await, "save under a taken id");
    assert_eq!(
        TemplateStore::get_template(store, &second.name, None)
            .await
            .expect("get"),
        None
    );
}

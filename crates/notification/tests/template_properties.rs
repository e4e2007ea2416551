//! Property tests of template create (`check`) and render: random and mutated
//! templates and variables never panic, every failure is a typed
//! `NotificationError`, output stays under the renderer's size cap, and a
//! template never shows a variable it does not declare (issue 11, "Also").
//!
//! A fixed case count and seed, so CI runs the same cases every time:
//! `PROPTEST_CASES` and `PROPTEST_RNG_SEED` override them (the seed in use is
//! printed).

use messaging_model::{MessageTemplate, TemplateKind};
use notification::template::TemplateRenderer;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{Map, Value, json};

const CASES: u32 = 1_000;
const SEED: u64 = 0x7465_6d70_6c61_7431;
/// The value of a variable no template declares: it must never be rendered.
const SECRET: &str = "S3CR3T-never-rendered";
/// A small cap, so that multiplying constructs reach it within the test.
const CAP: usize = 64 * 1024;

fn config() -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(SEED);
    }
    config.failure_persistence = None;
    eprintln!(
        "proptest: {} cases, seed {:?} (PROPTEST_CASES, PROPTEST_RNG_SEED)",
        config.cases, config.rng_seed
    );
    config
}

const NAMES: [&str; 5] = ["name", "items", "code", "secret", "this"];

/// Pieces of handlebars, valid and not, including the constructs that once
/// reached undeclared variables or multiplied output.
fn fragment() -> impl Strategy<Value = String> {
    let name = prop::sample::select(NAMES.to_vec());
    prop_oneof![
        "[a-zA-Z ,.!<>&\"'\n]{0,12}",
        name.clone().prop_map(|n| format!("{{{{{n}}}}}")),
        name.clone().prop_map(|n| format!("{{{{{{{n}}}}}}}")),
        name.clone().prop_map(|n| format!("{{{{#each {n}}}}}")),
        Just("{{/each}}".to_owned()),
        name.clone().prop_map(|n| format!("{{{{#if {n}}}}}")),
        Just("{{else}}".to_owned()),
        Just("{{/if}}".to_owned()),
        name.clone().prop_map(|n| format!("{{{{#with {n}}}}}")),
        Just("{{/with}}".to_owned()),
        Just("{{#each this}}{{@key}}={{this}}{{/each}}".to_owned()),
        Just("{{lookup this \"secret\"}}".to_owned()),
        Just("{{../secret}}".to_owned()),
        Just("{{@root.secret}}".to_owned()),
        Just("{{> partial}}".to_owned()),
        Just("{{".to_owned()),
        Just("}}".to_owned()),
        Just("{{!-- c --}}".to_owned()),
        name.prop_map(|n| format!("{{{{#each items}}}}{{{{../{n}}}}}{{{{/each}}}}")),
    ]
}

fn template_text() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..12).prop_map(|parts| parts.concat())
}

fn variable_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z<>&]{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..40).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn kind() -> impl Strategy<Value = TemplateKind> {
    prop_oneof![
        Just(TemplateKind::Email),
        Just(TemplateKind::Sms),
        Just(TemplateKind::Push)
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn create_and_render_never_panic_and_never_leak_undeclared_variables(
        kind in kind(),
        content in template_text(),
        subject in template_text(),
        declared in prop::collection::btree_set(prop::sample::select(vec!["name", "items", "code"]), 0..3),
        values in prop::collection::btree_map(prop::sample::select(vec!["name", "items", "code"]), variable_value(), 0..3),
    ) {
        let mut template = MessageTemplate::new("prop", kind, content)
            .with_variables(declared.iter().copied());
        if kind != TemplateKind::Sms {
            template = template.with_subject(subject);
        }
        let renderer = TemplateRenderer::new().with_max_rendered_bytes(CAP);
        // Whatever check says, render must not panic either (a stored template
        // may predate today's checks).
        let checked = renderer.check(&template);
        let mut variables: Map<String, Value> = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        variables.insert("secret".to_owned(), json!(SECRET));
        match renderer.render(&template, &Value::Object(variables)) {
            Ok(rendered) => {
                let parts = [&rendered.subject, &rendered.text, &rendered.html];
                for part in parts.into_iter().flatten() {
                    prop_assert!(part.len() <= CAP, "{} bytes over the {CAP}-byte cap", part.len());
                    prop_assert!(!part.contains(SECRET), "an undeclared variable was rendered: {part:?} from {template:?}");
                }
            }
            Err(error) => {
                // A typed error with a message, permanent: retrying cannot help.
                prop_assert!(!error.to_string().is_empty());
                prop_assert!(error.is_permanent(), "{error:?}");
            }
        }
        if let Err(error) = checked {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}

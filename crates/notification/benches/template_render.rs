//! Template rendering throughput: `TemplateRenderer::render` (cache lookup,
//! change check, variable check, strict rendering of subject and HTML body)
//! against plain handlebars rendering the same two templates with the same
//! settings (strict mode, HTML escaping for the body), in the same run.
//!
//! Run: `cargo bench -p notification --bench template_render`
//! Target: our throughput >= 90 % of plain handlebars.

use std::hint::black_box;
use std::time::{Duration, Instant};

use handlebars::{Context, Handlebars};
use messaging_model::{MessageTemplate, TemplateKind};
use notification::template::{MessageTemplateExt, TemplateRenderer};
use serde_json::json;

const SUBJECT: &str = "Your order {{order_id}} has shipped, {{name}}";
const BODY: &str = r#"<html><body>
<h1>Hello {{name}},</h1>
{{#if vip}}<p class="vip">Thank you for being a VIP customer since {{member_since}}.</p>{{else}}<p>Thank you for your order.</p>{{/if}}
<p>Order <strong>{{order_id}}</strong> is on its way to:</p>
<address>{{address.street}}<br>{{address.city}} {{address.zip}}</address>
<table>
{{#each items}}<tr><td>{{name}}</td><td>{{quantity}}</td><td>{{price}} {{../currency}}</td></tr>
{{/each}}</table>
<p>Total: {{total}} {{currency}}</p>
{{#unless vip}}<p>Join our VIP programme for free shipping.</p>{{/unless}}
<p>Questions? Reply to this email & we'll help.</p>
</body></html>"#;

fn main() {
    let template = MessageTemplate::new("order_shipped", TemplateKind::Email, BODY)
        .with_subject(SUBJECT)
        .with_variables([
            "name",
            "vip",
            "member_since",
            "order_id",
            "address",
            "items",
            "currency",
            "total",
        ])
        .html();
    let variables = json!({
        "name": "Ann <Example>",
        "vip": true,
        "member_since": "2019",
        "order_id": "A-10293",
        "address": {"street": "1 Long Street", "city": "Springfield", "zip": "12345"},
        "items": [
            {"name": "Kettle", "quantity": 1, "price": "39.90"},
            {"name": "Mugs & saucers", "quantity": 4, "price": "12.00"},
            {"name": "Tea \"Earl Grey\"", "quantity": 2, "price": "6.50"}
        ],
        "currency": "EUR",
        "total": "97.90"
    });

    let renderer = TemplateRenderer::new();
    renderer.check(&template).unwrap();

    let mut escaped = Handlebars::new();
    escaped.set_strict_mode(true);
    escaped.register_template_string("body", BODY).unwrap();
    let mut plain = Handlebars::new();
    plain.set_strict_mode(true);
    plain.register_escape_fn(handlebars::no_escape);
    plain.register_template_string("subject", SUBJECT).unwrap();

    // Both produce the same output.
    let ours = renderer.render(&template, &variables).unwrap();
    let context = Context::wraps(&variables).unwrap();
    assert_eq!(
        ours.html.as_deref(),
        Some(
            escaped
                .render_with_context("body", &context)
                .unwrap()
                .as_str()
        )
    );
    assert_eq!(
        ours.subject.as_deref(),
        Some(
            plain
                .render_with_context("subject", &context)
                .unwrap()
                .as_str()
        )
    );

    let ours = || {
        black_box(
            renderer
                .render(black_box(&template), black_box(&variables))
                .unwrap(),
        );
    };
    let baseline = || {
        let context = Context::wraps(black_box(&variables)).unwrap();
        black_box(plain.render_with_context("subject", &context).unwrap());
        black_box(escaped.render_with_context("body", &context).unwrap());
    };

    // Warm up, then alternate rounds so both see the same machine state.
    let round = Duration::from_millis(300);
    run_for(Duration::from_millis(300), ours);
    run_for(Duration::from_millis(300), baseline);
    let mut ours_rates = Vec::new();
    let mut baseline_rates = Vec::new();
    for _ in 0..7 {
        ours_rates.push(run_for(round, ours));
        baseline_rates.push(run_for(round, baseline));
    }
    let ours_rate = median(&mut ours_rates);
    let baseline_rate = median(&mut baseline_rates);
    let ratio = ours_rate / baseline_rate;
    println!(
        "template_render: subject + HTML body (3 items, if/each/unless), median of 7 rounds of {round:?}"
    );
    println!("  notification TemplateRenderer::render : {ours_rate:>10.0} renders/s");
    println!("  plain handlebars (same templates)     : {baseline_rate:>10.0} renders/s");
    println!(
        "  ratio                                 : {:>10.1} % (target >= 90 %)",
        ratio * 100.0
    );
}

/// Calls `f` repeatedly for `duration`; calls per second.
fn run_for(duration: Duration, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < duration {
        for _ in 0..100 {
            f();
        }
        calls += 100;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

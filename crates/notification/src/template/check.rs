//! What a template source uses: the root variables it reads, and the
//! constructs refused here. Walks handlebars' parsed template.

use std::collections::BTreeSet;

use handlebars::Path;
use handlebars::template::{BlockParam, HelperTemplate, Parameter, Template, TemplateElement};

/// Helpers available in templates: handlebars' built-ins.
const INLINE_HELPERS: &[&str] = &[
    "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or", "not", "len",
];
/// Block helpers whose body keeps the outer context.
const SAME_SCOPE_BLOCKS: &[&str] = &["if", "unless"];
/// Block helpers whose body runs in a new context.
const NEW_SCOPE_BLOCKS: &[&str] = &["each", "with"];

/// Compiles `source` and returns the root variables it reads (the first
/// segment of each path evaluated against the data given to the template).
pub(crate) fn used_variables(source: &str) -> Result<(Template, BTreeSet<String>), String> {
    let template = Template::compile(source).map_err(|error| error.to_string())?;
    let mut walker = Walker::default();
    walker.template(&template, &Scope::root());
    if let Some(problem) = walker.problems.into_iter().next() {
        return Err(problem);
    }
    Ok((template, walker.used))
}

/// Where a path is evaluated: how many context levels below the root, and the
/// block parameters (`as |item|`) in sight.
#[derive(Clone)]
struct Scope {
    depth: usize,
    locals: Vec<String>,
}

impl Scope {
    fn root() -> Self {
        Self {
            depth: 0,
            locals: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Walker {
    used: BTreeSet<String>,
    problems: Vec<String>,
}

impl Walker {
    fn template(&mut self, template: &Template, scope: &Scope) {
        for element in &template.elements {
            match element {
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                TemplateElement::HtmlExpression(_) => self.problems.push(
                    "unescaped output ({{{ }}} or {{& }}) is not allowed: every value is escaped for HTML bodies"
                        .to_owned(),
                ),
                TemplateElement::Expression(helper) => self.expression(helper, scope),
                TemplateElement::HelperBlock(helper) => self.block(helper, scope),
                TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                    self.problems.push("decorators are not supported".to_owned())
                }
                TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                    self.problems.push("partials ({{> name}}) are not supported".to_owned())
                }
                _ => self.problems.push("unsupported template construct".to_owned()),
            }
        }
    }

    fn expression(&mut self, helper: &HelperTemplate, scope: &Scope) {
        if helper.params.is_empty() && helper.hash.is_empty() {
            // `{{name}}`: a value, unless it names a helper that takes no parameter.
            match &helper.name {
                Parameter::Name(name) => self.root_name(name, scope),
                other => self.parameter(other, scope),
            }
            return;
        }
        match &helper.name {
            Parameter::Name(name) if INLINE_HELPERS.contains(&name.as_str()) => {}
            Parameter::Name(name) => {
                self.problems.push(format!("unknown helper {name:?}"));
                return;
            }
            _ => {
                self.problems
                    .push("a helper call must start with a helper name".to_owned());
                return;
            }
        }
        self.arguments(helper, scope);
    }

    fn block(&mut self, helper: &HelperTemplate, scope: &Scope) {
        let name = match &helper.name {
            Parameter::Name(name) => name.as_str(),
            _ => {
                self.problems
                    .push("a block must start with a helper name".to_owned());
                return;
            }
        };
        self.arguments(helper, scope);
        let inner = if SAME_SCOPE_BLOCKS.contains(&name) {
            scope.clone()
        } else if NEW_SCOPE_BLOCKS.contains(&name) {
            let mut inner = Scope {
                depth: scope.depth + 1,
                locals: scope.locals.clone(),
            };
            match &helper.block_param {
                Some(BlockParam::Single(Parameter::Name(item))) => inner.locals.push(item.clone()),
                Some(BlockParam::Pair((Parameter::Name(item), Parameter::Name(index)))) => {
                    inner.locals.push(item.clone());
                    inner.locals.push(index.clone());
                }
                _ => {}
            }
            inner
        } else {
            self.problems.push(format!(
                "unknown block helper {name:?} (use if, unless, each or with)"
            ));
            return;
        };
        if let Some(body) = &helper.template {
            self.template(body, &inner);
        }
        // `{{else}}` runs in the outer context.
        if let Some(inverse) = &helper.inverse {
            self.template(inverse, scope);
        }
    }

    fn arguments(&mut self, helper: &HelperTemplate, scope: &Scope) {
        for param in &helper.params {
            self.parameter(param, scope);
        }
        for value in helper.hash.values() {
            self.parameter(value, scope);
        }
    }

    fn parameter(&mut self, parameter: &Parameter, scope: &Scope) {
        match parameter {
            Parameter::Name(name) => self.root_name(name, scope),
            Parameter::Path(Path::Relative((_, raw))) => self.path(raw, scope),
            // `@index`, `@first`, `../@key`: values of the enclosing loop.
            Parameter::Path(Path::Local(_)) => {}
            Parameter::Literal(_) => {}
            Parameter::Subexpression(subexpression) => match subexpression.as_element() {
                TemplateElement::Expression(helper) => self.expression(helper, scope),
                _ => self.problems.push("unsupported subexpression".to_owned()),
            },
            _ => self.problems.push("unsupported parameter".to_owned()),
        }
    }

    fn root_name(&mut self, name: &str, scope: &Scope) {
        self.path(name, scope);
    }

    /// Records the root variable a path reads, if it reads one.
    fn path(&mut self, raw: &str, scope: &Scope) {
        let mut rest = raw;
        let mut depth = scope.depth as isize;
        let mut at_root = false;
        if let Some(after) = rest.strip_prefix("@root") {
            at_root = true;
            rest = after.trim_start_matches(['.', '/']);
        } else {
            while let Some(after) = rest.strip_prefix("../") {
                depth -= 1;
                rest = after;
            }
        }
        for prefix in ["this.", "this/", "./"] {
            if let Some(after) = rest.strip_prefix(prefix) {
                rest = after;
            }
        }
        if rest == "this" || rest == "." || rest.is_empty() {
            return;
        }
        let first = rest
            .split(['.', '/'])
            .next()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if !at_root && (depth > 0 || scope.locals.iter().any(|local| local == first)) {
            // Read from a loop item or a `with` value, not from the data given.
            return;
        }
        if !first.is_empty() {
            self.used.insert(first.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(source: &str) -> Vec<String> {
        used_variables(source).unwrap().1.into_iter().collect()
    }

    #[test]
    fn finds_root_variables() {
        assert_eq!(
            used("Hi {{name}}, {{user.email}} {{this.code}}"),
            ["code", "name", "user"]
        );
        assert_eq!(
            used("{{#if vip}}gold{{else if trial}}trial{{else}}{{plan}}{{/if}}"),
            ["plan", "trial", "vip"]
        );
        assert_eq!(used("{{#unless done}}{{eq a 1}}{{/unless}}"), ["a", "done"]);
        assert_eq!(used("{{len (lookup table key)}}"), ["key", "table"]);
    }

    #[test]
    fn loop_bodies_read_their_item_not_the_root() {
        assert_eq!(
            used("{{#each items}}{{name}} {{../currency}} {{@root.shop}} {{@index}}{{/each}}"),
            ["currency", "items", "shop"]
        );
        assert_eq!(
            used("{{#each items as |item|}}{{item.price}}{{/each}}"),
            ["items"]
        );
        assert_eq!(
            used("{{#with user}}{{name}}{{else}}{{fallback}}{{/with}}"),
            ["fallback", "user"]
        );
    }

    #[test]
    fn refuses_what_could_escape_or_fail_later() {
        for (source, expected) in [
            ("{{{name}}}", "unescaped"),
            ("{{& name}}", "unescaped"),
            ("{{> footer}}", "partials"),
            ("{{shout name}}", "unknown helper"),
            ("{{#loop x}}{{/loop}}", "unknown block"),
            ("{{#if x}}", "x"),
        ] {
            let error = used_variables(source).unwrap_err();
            assert!(error.contains(expected), "{source}: {error}");
        }
    }
}

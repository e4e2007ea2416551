# The suite's entry points. `make demo` and `make test` are the two commands a newcomer runs.
SHELL := /bin/bash
CARGO ?= cargo

# Local services (see the README); override to point elsewhere.
export REDIS_URL ?= redis://127.0.0.1:6379
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: all demo demo-core test examples lint package fmt bench doc api-fuzz

all: lint test

## The whole pipeline on the embedded default: no server needed.
demo:
	$(CARGO) run --quiet -p messaging-cli -- demo

## The messaging core alone (publish, retry into the dead-letter queue, delay).
demo-core:
	$(CARGO) run --quiet -p messaging-core --example demo

## Every test of the workspace, against the local Redis and Postgres and a Redis
## Cluster on loopback (started and stopped by scripts/with-redis-cluster.sh unless
## REDIS_CLUSTER_URL names one), then the examples.
test:
	bash scripts/with-redis-cluster.sh $(CARGO) test --workspace --all-features
	$(MAKE) examples

## Schema-driven fuzzing of `messaging serve` (schemathesis against the served
## OpenAPI, a bounded number of examples per operation): no 5xx.
api-fuzz:
	bash scripts/api-fuzz.sh

## The runnable examples of examples/ (each asserts what it shows).
examples:
	$(CARGO) run --quiet -p messaging-examples --example redis_pubsub
	$(CARGO) run --quiet -p messaging-examples --example worker_templates
	$(CARGO) run --quiet -p messaging-examples --example inbox

## rustfmt check and clippy with warnings as errors; the store crates stay free of
## the channels' weight, and notification builds without its channel features.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings
	@heavy="$$($(CARGO) tree -p notification-store-postgres -e normal,build | grep -E 'lettre|reqwest|handlebars')"; \
	if [ -n "$$heavy" ]; then echo "notification-store-postgres must not depend on lettre, reqwest or handlebars:"; echo "$$heavy"; exit 1; fi
	$(CARGO) check -p notification --no-default-features
	@heavy="$$($(CARGO) tree -p notification --no-default-features -e normal | grep -E 'lettre|reqwest')"; \
	if [ -n "$$heavy" ]; then echo "notification without default features must not depend on lettre or reqwest:"; echo "$$heavy"; exit 1; fi

## `cargo package` (with its verifying build) of every crate meant for crates.io:
## fails when a crate reaches outside its folder (include_str!, migrations, tests).
PUBLISHED := messaging-model messaging-core messaging-redis messaging-outbox notification-store notification notification-store-postgres notification-delivery-events messaging-http
package:
	$(CARGO) package --allow-dirty $(foreach p,$(PUBLISHED),-p $(p))

fmt:
	$(CARGO) fmt --all

## Benchmarks: each prints its figures and the ratio to a baseline measured in the same run.
bench:
	$(CARGO) bench --workspace

doc:
	$(CARGO) doc --workspace --no-deps

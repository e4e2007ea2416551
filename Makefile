# The suite's entry points. `make demo` and `make test` are the two commands a newcomer runs.
SHELL := /bin/bash
CARGO ?= cargo

# Local services (see the README); override to point elsewhere.
export REDIS_URL ?= redis://127.0.0.1:6379
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test

.PHONY: all demo demo-core test lint fmt bench doc

all: lint test

## The whole pipeline on the embedded default: no server needed.
demo:
	$(CARGO) run --quiet -p messaging-cli -- demo

## The messaging core alone (publish, retry into the dead-letter queue, delay).
demo-core:
	$(CARGO) run --quiet -p messaging-core --example demo

## Every test of the workspace, against the local Redis and Postgres.
test:
	$(CARGO) test --workspace --all-features

## rustfmt check and clippy with warnings as errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

fmt:
	$(CARGO) fmt --all

## Benchmarks: each prints its figures and the ratio to a baseline measured in the same run.
bench:
	$(CARGO) bench --workspace

doc:
	$(CARGO) doc --workspace --no-deps

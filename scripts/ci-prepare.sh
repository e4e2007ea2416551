#!/usr/bin/env bash
# Installs and starts what the tests need beyond the Rust toolchain, idempotently.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v pg_isready >/dev/null 2>&1 || need_apt+=(postgresql-client)
# The rediss:// test makes its own CA and certificates.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Postfix's smtp-sink: the independent SMTP server of the end-to-end and fault tests
# and the worker bench (the project's own sink is for fault injection only).
[ -x /usr/sbin/smtp-sink ] || need_apt+=(postfix)
# Headless Chromium and its WebDriver: the dashboard's browser tests (messaging-http).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# curl: scripts/api-fuzz.sh seeds the API it fuzzes.
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if ((${#need_apt[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The shared Redis on 6379 (the machine starts it; start it if it stopped).
if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/redis-ci.log
fi

# The shared PostgreSQL on 5432.
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

rustup component add rustfmt clippy >/dev/null 2>&1 || true

# schemathesis (PyPI): the API fuzz run of `make api-fuzz`.
command -v schemathesis >/dev/null 2>&1 || pip install -q "schemathesis>=4,<5"

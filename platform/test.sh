#!/usr/bin/env bash
# Set up .venv and run the whole test suite against real PostgreSQL and Redis.
# DATABASE_URL / CELERY_BROKER_URL default to the local services; the suite fails (it
# never falls back to SQLite) when they cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."
platform/bootstrap.sh dev
# The browser tests (tests/browser) drive Debian's Chromium through Playwright.
command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

export DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}"
export CELERY_BROKER_URL="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/15}"
export SECRET_KEY="${SECRET_KEY:-test-suite-secret-key-not-for-production-0123456789abcdef}"
export PLATFORM_TEST_REQUIRE_SERVICES=1
export VAR_DIR="${VAR_DIR:-$PWD/var/test}"
mkdir -p "$VAR_DIR/static"
exec .venv/bin/python -m pytest "$@"

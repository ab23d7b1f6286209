#!/usr/bin/env bash
# Set up .venv and run the platform with a demo dataset of synthetic phantoms:
# web (gunicorn) + worker + beat, on SQLite and an embedded broker under var/ unless
# DATABASE_URL / CELERY_BROKER_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
platform/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

mkdir -p var
if [ -z "${SECRET_KEY:-}" ] && [ -z "${SECRET_KEY_FILE:-}" ]; then
  [ -f var/secret_key ] || python -c "import secrets; print(secrets.token_urlsafe(50))" > var/secret_key
  export SECRET_KEY_FILE="$PWD/var/secret_key"
fi
export PORT="${PORT:-8000}"
export DEMO_PASSWORD="${DEMO_PASSWORD:-fracture-demo}"

python manage.py migrate --noinput -v0
python manage.py collectstatic --noinput -v0
python manage.py setup_demo --password "$DEMO_PASSWORD"

cat <<TXT

  Platform:  http://127.0.0.1:$PORT/
  Login:     admin / $DEMO_PASSWORD   (radiologist: reader / $DEMO_PASSWORD)
  Health:    http://127.0.0.1:$PORT/healthz
  API docs:  http://127.0.0.1:$PORT/api/docs/

TXT
exec honcho -f platform/Procfile -d . start

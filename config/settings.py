"""Settings, all from the environment (see README.md, "Configuration").

Defaults run the platform on one machine with nothing else installed: SQLite and an
embedded Celery broker (kombu's filesystem transport) under ``var/``. Setting
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to PostgreSQL and Redis.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import check_secret, env_bool, env_int, env_list, env_networks, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = env_path("VAR_DIR", BASE_DIR / "var")

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set unless DEBUG=1")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG"
# Earlier keys, still accepted for signatures (sessions, password resets, Label Studio
# image URLs) while a new SECRET_KEY takes over: rotation without signing everyone out.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
if not DEBUG:
    for _name, _key in [("SECRET_KEY", SECRET_KEY), *(("SECRET_KEY_FALLBACKS", k) for k in SECRET_KEY_FALLBACKS)]:
        check_secret(_name, _key)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
if "*" in ALLOWED_HOSTS and not DEBUG:
    raise ImproperlyConfigured("ALLOWED_HOSTS='*' is refused outside DEBUG; list the host names")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # DRF's plain-text tokens are no longer accepted (knox's replace them); the app stays
    # installed so that its old table keeps following user deletions until it is dropped
    # with `manage.py migrate authtoken zero` and this line removed.
    "rest_framework.authtoken",
    "knox",  # API tokens: stored hashed, expiring (REST_KNOX below)
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "csp",
    "annotator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            # web, worker and beat share the file: WAL lets readers run beside a writer
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dataset-list"
LOGOUT_REDIRECT_URL = "login"

# --- i18n / time ------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- files ------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env_path("STATIC_ROOT", VAR_DIR / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]
# The review page's viewer libraries, installed by `npm ci` (platform/bootstrap.sh) and
# served from their own dist folders, never copied into the repository.
STATICFILES_DIRS += [
    (f"vendor/{prefix}", BASE_DIR / "node_modules" / dist)
    for prefix, dist in (
        ("openseadragon", "openseadragon/build/openseadragon"),
        ("annotorious-openseadragon", "@annotorious/openseadragon/dist"),
    )
    if (BASE_DIR / "node_modules" / dist).is_dir()
]
MEDIA_URL = "media/"
MEDIA_ROOT = env_path("MEDIA_ROOT", VAR_DIR / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# An S3-compatible store for media and weights (workers on other machines read the same
# files) when S3_BUCKET is set; otherwise the local file system.
S3_BUCKET = env_str("S3_BUCKET")
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL"),
            "region_name": env_str("S3_REGION", "us-east-1"),
            "access_key": env_str("S3_ACCESS_KEY_ID"),
            "secret_key": env_str("S3_SECRET_ACCESS_KEY"),
            "file_overwrite": False,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
# Uploads: a request body over this many bytes is refused with 413 before it is stored.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 256 * 1024 * 1024, minimum=1024)
# Decompression-bomb guard: images with more pixels are refused before decoding.
MAX_IMAGE_PIXELS = env_int("MAX_IMAGE_PIXELS", 64_000_000, minimum=1)
# Decoded pixels for the review page (annotator.review.pixel_cache), local to the host.
PIXEL_CACHE_DIR = env_path("PIXEL_CACHE_DIR", VAR_DIR / "pixel-cache")
PIXEL_CACHE_MAX_BYTES = env_int("PIXEL_CACHE_MAX_BYTES", 2 * 1024**3, minimum=0)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# --- API --------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "knox.auth.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # issue 6: refusals (401/403/404) are written to the audit log; token sign-in is rate-limited
    "EXCEPTION_HANDLER": "annotator.web.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "token": env_str("TOKEN_THROTTLE_RATE", "10/minute"),
        "analyze": env_str("ANALYZE_THROTTLE_RATE", "30/minute"),  # per user
        "upload": env_str("UPLOAD_THROTTLE_RATE", "120/minute"),  # per user (annotator.web.throttles)
    },
}
# API tokens (django-rest-knox): only a SHA-512 digest is stored; each token expires
# API_TOKEN_TTL_SECONDS after it is issued, and all of a user's tokens are revoked when
# the password changes or the user signs out (annotator.audit.signals).
REST_KNOX = {
    "TOKEN_TTL": timedelta(seconds=env_int("API_TOKEN_TTL_SECONDS", 30 * 24 * 3600, minimum=60)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fracture active-learning platform API",
    "DESCRIPTION": "[← Back to the platform](/) · [Review page](/review/) · "
    "scripts sign in with `POST /api/auth/token/`.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # issue 6: `check --deploy` is the security gate; schema quality is checked by the
    # schemathesis test against /api/schema/, not by warnings in the deploy check
    "ENABLE_DJANGO_DEPLOY_CHECK": False,
}

# --- Celery -----------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        # one folder for in and out: every process on this machine shares the queue
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem://")
    else {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 4 * 3600, minimum=60)}
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # the transport expects its folders to exist in every process that uses it
    for _folder in ("queue", "control", "processed"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_IGNORE_RESULT = True  # results are written on rows (runs, quick reads), never awaited
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 3 * 3600, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 3 * 3600 + 300, minimum=1)
CELERY_TASK_DEFAULT_QUEUE = "default"
# Long work on its own queues, so that GPU machines can run workers for just these. Task
# names are annotator.learning.dispatch's; services publish by name.
CELERY_TASK_ROUTES = {
    "annotator.tasks.train_model": {"queue": "training"},
    "annotator.tasks.propose_images": {"queue": "inference"},
    "annotator.tasks.rank_dataset": {"queue": "inference"},
    "annotator.tasks.analyze_upload": {"queue": "inference"},
}
CELERY_IMPORTS = ["annotator.learning.tasks", "annotator.review.tasks"]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# A running training run whose worker sent no heartbeat for this long is failed by the
# sweeper (the worker was killed or its machine lost).
TRAINING_HEARTBEAT_TIMEOUT = env_int("TRAINING_HEARTBEAT_TIMEOUT", 300, minimum=5)
# The sweeper asks again for a production version's missing proposals or ranking once
# they were requested this long ago and no prediction has arrived since (a lost task).
INFERENCE_RETRY_SECONDS = env_int("INFERENCE_RETRY_SECONDS", 300, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-training": {
        "task": "annotator.tasks.sweep_training",
        "schedule": float(env_int("TRAINING_SWEEP_SECONDS", 60, minimum=5)),
    },
    # images opened and left unfinished return to the pool once their lease runs out
    "release-abandoned-readings": {
        "task": "annotator.tasks.release_abandoned_readings",
        "schedule": 60.0,
    },
}
HEALTH_WORKER_TIMEOUT = float(env_int("HEALTH_WORKER_TIMEOUT_MS", 1500, minimum=100)) / 1000
# Anonymous /healthz answers ok/degraded from a check at most this old (refreshed in the
# background); the full report, checked now, goes to staff and to HEALTH_TOKEN holders.
HEALTH_CACHE_SECONDS = env_int("HEALTH_CACHE_SECONDS", 15, minimum=1)
HEALTH_TOKEN = env_str("HEALTH_TOKEN", "")

# --- logging ----------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# --- security ---------------------------------------------------------------------------
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- hardening behind HTTPS (issue 6; `manage.py check --deploy` is clean with these set)
# SECURE_SSL_REDIRECT=1, SECURE_HSTS_SECONDS=31536000, SECURE_COOKIES=1 and, behind a
# TLS-terminating proxy, SECURE_PROXY_SSL_HEADER=1 (trusts X-Forwarded-Proto: https).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Content-Security-Policy (django-csp) on every answer: scripts, styles and everything
# else only from this origin (/static/, the viewer libraries included); no inline script.
# Two allowances for the review page's viewer libraries: 'unsafe-eval', as Annotorious'
# bundled PixiJS compiles its shaders with new Function(), and style attributes, which
# OpenSeadragon and Annotorious set on their elements (style-src-attr only: <style>
# elements and style sheets still come from this origin alone). Images may also be
# data:/blob: URLs (the viewer's canvas tiles). Stored image files keep their own
# stricter policy (annotator.web.files).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, "'unsafe-eval'"],
        "style-src": [SELF],
        "style-src-attr": ["'unsafe-inline'"],  # OpenSeadragon/Annotorious set style attributes
        "img-src": [SELF, "data:", "blob:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 3600, minimum=300)

# --- sign-in throttle (annotator.audit.signin.ThrottledModelBackend) -------------
# Failed sign-ins are counted from the audit log, so every web process shares the count.
AUTHENTICATION_BACKENDS = ["annotator.audit.signin.ThrottledModelBackend"]
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_LIMIT_PER_IP = env_int("LOGIN_FAILURE_LIMIT_PER_IP", 50, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 15 * 60, minimum=1)
# Addresses or networks of the reverse proxies in front of the web process. Only a
# request from one of them has its client address read from X-Forwarded-For (the nearest
# entry that is not itself a trusted proxy); from anyone else the header is ignored.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")

# --- Label Studio interoperability (issue 6) ---------------------------------------------
# Task image URLs pushed to Label Studio are signed with a key of their own (rotate it,
# keeping the old one in LABEL_STUDIO_SIGNING_KEY_FALLBACKS for a while, to revoke pushed
# URLs without touching sessions) and expire after this many seconds (push again after).
_label_studio_key = env_str("LABEL_STUDIO_SIGNING_KEY")
LABEL_STUDIO_SIGNING_KEY = _label_studio_key or SECRET_KEY
LABEL_STUDIO_SIGNING_KEY_FALLBACKS = env_list(
    "LABEL_STUDIO_SIGNING_KEY_FALLBACKS", [] if _label_studio_key else SECRET_KEY_FALLBACKS
)
if not DEBUG:
    for _key in [LABEL_STUDIO_SIGNING_KEY, *LABEL_STUDIO_SIGNING_KEY_FALLBACKS]:
        check_secret("LABEL_STUDIO_SIGNING_KEY", _key)
LABEL_STUDIO_IMAGE_URL_MAX_AGE = env_int("LABEL_STUDIO_IMAGE_URL_MAX_AGE", 7 * 24 * 3600, minimum=60)

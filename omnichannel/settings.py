"""Settings for Omnichannel: the environment is the only source (12-factor).

Unset variables give the embedded default of ``make run`` and ``make test``: DEBUG on,
SQLite under ``var/``, an embedded Redis server. Production sets at least ``DEBUG=0``,
``SECRET_KEY``, ``ALLOWED_HOSTS``, ``DATABASE_URL`` and ``REDIS_URL`` (README.md).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from omnichannel import embedded_redis
from omnichannel.addresses import parse_trusted_proxies
from omnichannel.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()


def env_bool(name: str, default: bool) -> bool:
    """A strict boolean: 1/0, true/false, yes/no, on/off; anything else is an error."""
    raw = env.str(name, default="").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no, on/off), not {raw!r}.")


VAR_DIR = Path(env.str("OMNICHANNEL_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", default=True)

_INSECURE_DEV_KEY = "dev-only-insecure-key-not-for-production-use-0123456789abcdef"
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = _INSECURE_DEV_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Proxies whose X-Forwarded-For is believed (comma-separated addresses or networks, e.g.
# "10.0.0.0/8,127.0.0.1"; default none): every per-address limit counts the TCP peer's address,
# or behind these proxies the address they were connected from (omnichannel/addresses.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    parse_trusted_proxies(TRUSTED_PROXIES)
except ValueError as exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {exc}.") from None

# Public base URL of this server, used in the embed snippet and printed links.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "omnichannel.apps.OmnichannelAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_htmx",
    "axes",
    "omnichannel",
    "workstreams",
    "agents",
    "conversations",
]

MIDDLEWARE = [
    # Outside the others, so that every response, a 400 for a forged Host too, has the policy.
    "omnichannel.csp.ContentSecurityPolicyMiddleware",
    # These two run on the event loop; everything below, in one hop to the request's thread
    # (omnichannel/realtime/http.py). Static files get nosniff from SERVESTATIC_ADD_HEADERS_FUNCTION.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Cache-Control: no-store on every view's response that did not choose its own (customer data).
    "omnichannel.caching.NoStoreMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a lockout into its response (omnichannel/lockout.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "omnichannel.urls"

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
                "django.template.context_processors.i18n",
                "omnichannel.csp.context_processor",
            ],
        },
    },
]

ASGI_APPLICATION = "omnichannel.asgi.application"

# --- Database -------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'omnichannel.sqlite3'}")}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Web server, worker and beat share one file: wait for locks instead of failing.
    _db.setdefault("OPTIONS", {}).update({"timeout": 20, "transaction_mode": "IMMEDIATE"})
    # Tests use a file too, not SQLite's shared in-memory database: its table locks fail at
    # once ("database table is locked") where a file waits, and browser tests run the server in
    # threads beside the test. One file per process, so two test runs never share one.
    _db["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
elif env.int("DATABASE_POOL_SIZE", default=16) > 0:
    # A connection pool per process (psycopg_pool): under ASGI every HTTP request runs in a
    # thread of its own, and persistent per-thread connections would pile up until PostgreSQL
    # refuses more (100 agents at once did it; Django's docs advise pools under ASGI). A
    # socket frame or a request borrows a connection and gives it back.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env.int("DATABASE_POOL_SIZE", default=16),
        "timeout": 20,
    }
else:
    # DATABASE_POOL_SIZE=0: persistent connections (checked before reuse), as for a pooler in front.
    _db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    _db["CONN_HEALTH_CHECKS"] = True
_prepare_threshold = env.int("DATABASE_PREPARE_THRESHOLD", default=5)
if _db["ENGINE"] == "django.db.backends.postgresql" and _prepare_threshold > 0:
    # Prepared statements: psycopg prepares a query the connection has run this many times, and
    # PostgreSQL then skips planning it (docs/decisions.md, "Prepared statements"). Needs
    # server-side binding. DATABASE_PREPARE_THRESHOLD=0 turns both off, for a pooler in
    # transaction mode that does not track prepared statements (PgBouncer before 1.21).
    _db.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=_prepare_threshold)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Threads per server process for the database work of message frames (omnichannel/dbthreads.py);
# each holds a pooled connection while it runs. Not used on SQLite.
FRAME_DB_THREADS = env.int("FRAME_DB_THREADS", default=4)
# Connections per server event loop for the one-statement message path (omnichannel/asyncdb.py);
# 0 turns it off. Not used on SQLite.
FAST_PATH_CONNECTIONS = env.int("FAST_PATH_CONNECTIONS", default=4)

# --- Redis: channel layer, Celery broker, cache ---------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="") or embedded_redis.process_url()
# Prefix of the channel layer's Redis channels and of the cache's keys. Redis pub/sub ignores the
# database number of REDIS_URL: two deployments (or two test runs) sharing one Redis need two
# prefixes, or each hears the other's frames.
REDIS_PREFIX = env.str("REDIS_PREFIX", default="omnichannel")

# The real-time stack as the libraries ship it (omnichannel/realtime/): uvicorn's own WebSocket
# protocol, channels-redis' pub/sub layer through its public API, Channels' consumer loop,
# Django's ASGI handler and Redis cache. The same application, slower; the way back when an
# upgrade breaks a private part the fast stack relies on (tests/realtime/test_private_symbols.py).
OMNICHANNEL_STOCK_REALTIME = env_bool("OMNICHANNEL_STOCK_REALTIME", default=False)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": (
            "channels_redis.pubsub.RedisPubSubChannelLayer"
            if OMNICHANNEL_STOCK_REALTIME
            else "omnichannel.realtime.layers.PubSubChannelLayer"
        ),
        "CONFIG": {
            # redis-py 8 reads with a 5 s socket timeout by default, which races the layer's
            # 5 s blocking BZPOPMIN: an idle consumer would die. Give reads more room.
            "hosts": [{"address": REDIS_URL, "socket_timeout": 15, "socket_connect_timeout": 5}],
            "prefix": REDIS_PREFIX,
        },
    }
}

CACHES = {
    "default": {
        "BACKEND": (
            "django.core.cache.backends.redis.RedisCache"
            if OMNICHANNEL_STOCK_REALTIME
            else "omnichannel.realtime.cache.RedisCache"
        ),
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
    }
}

# Open WebSockets one client address (omnichannel/addresses.py) may hold across all server
# processes, counted in Redis (omnichannel/socketcap.py); the next one is closed with 4429.
# 0: no cap.
MAX_SOCKETS_PER_ADDRESS = env.int("MAX_SOCKETS_PER_ADDRESS", default=200)
if MAX_SOCKETS_PER_ADDRESS < 0:
    raise ImproperlyConfigured("MAX_SOCKETS_PER_ADDRESS must be 0 (no cap) or more.")

# Seconds a WebSocket send may wait for a client that stopped reading before the server lets
# the client go (it catches up from after_seq on reconnect).
WS_SEND_TIMEOUT = env.float("WS_SEND_TIMEOUT", default=10.0)

CELERY_BROKER_URL = embedded_redis.celery_broker_url(REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    # SWEEP_INTERVAL: seconds between sweeps (the fault tests shorten it; the rules are in minutes).
    "sweep": {"task": "conversations.tasks.sweep_task", "schedule": env.float("SWEEP_INTERVAL", default=60.0)},
    "average-wait": {"task": "conversations.tasks.average_wait_task", "schedule": 60.0},
    # EMAIL_SWEEP_INTERVAL: seconds between looks for unread replies due by email (docs/email.md).
    "emails": {"task": "conversations.tasks.emails_task", "schedule": env.float("EMAIL_SWEEP_INTERVAL", default=30.0)},
    # Uploads never sent in a message (ATTACHMENT_ORPHAN_AGE).
    "attachments": {"task": "conversations.tasks.attachments_sweep_task", "schedule": 3600.0},
}
CELERY_TIMEZONE = "UTC"

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
# Login throttling (django-axes) for /accounts/login/ and the admin's login: after
# AXES_FAILURE_LIMIT failed sign-ins for one username from one address, that pair is locked out
# for AXES_COOLOFF_MINUTES (429 with Retry-After); a success resets the count. The address is
# the TCP peer's, or behind TRUSTED_PROXIES the one they forward (omnichannel/addresses.py),
# never a header the client could forge. Attempts live in the database: every process sees them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "omnichannel.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "omnichannel.addresses.client_address"
AXES_VERBOSE = False
LOGIN_REDIRECT_URL = "agents:inbox"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation -------------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("da", _("Danish"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# --- Attachments (docs/operations: "Attachments") ---------------------------------------------------
# Files live in Django's default storage: the local file system under MEDIA_ROOT, or with
# ATTACHMENT_STORAGE=s3 an S3-compatible bucket through django-storages (AWS_STORAGE_BUCKET_NAME,
# AWS_S3_ENDPOINT_URL, AWS_S3_REGION_NAME, and credentials as boto3 finds them). Either way the
# files are private: clients get them only through the app's signed, short-lived URLs.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
ATTACHMENT_STORAGE = env.str("ATTACHMENT_STORAGE", default="filesystem")
if ATTACHMENT_STORAGE == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "default_acl": "private",
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
elif ATTACHMENT_STORAGE == "filesystem":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise ImproperlyConfigured("ATTACHMENT_STORAGE is filesystem or s3")
# How long an attachment's signed URL works (seconds).
ATTACHMENT_URL_MAX_AGE = env.int("ATTACHMENT_URL_MAX_AGE", default=3600)
# An upload never sent in a message is removed after this long (seconds).
ATTACHMENT_ORPHAN_AGE = env.int("ATTACHMENT_ORPHAN_AGE", default=24 * 3600)
# An upload larger than this stays on disk while it is read, never in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default=None)

STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "servestatic.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- REST framework -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "omnichannel.api_auth.SessionAuthentication",  # CSRF refusals answer the code csrf_failed
        "omnichannel.api_auth.TokenAuthentication",  # agents.ApiToken by the key's digest
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "omnichannel.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "widget": env.str("THROTTLE_WIDGET", default="240/min"),
        "agent": env.str("THROTTLE_AGENT", default="1200/min"),
    },
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["omnichannel.parsers.JSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Omnichannel API",
    "DESCRIPTION": "Customer widget and agent API (see docs/ and PROTOCOL.md).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Email ----------------------------------------------------------------------------------------
# EMAIL_URL: smtp://user:password@host:587?tls=True, smtps://…, consolemail://.
# Unset: with DEBUG, each email is a file under var/mail/ (make run shows them, and so does the
# admin's Emails page); without DEBUG, smtp://localhost:25.
if env.str("EMAIL_URL", default="") or not DEBUG:
    vars().update(env.email_url("EMAIL_URL", default="smtp://localhost:25"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="omnichannel@localhost")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=20.0)
# The domain of the Message-ID of every email sent (default: DEFAULT_FROM_EMAIL's).
EMAIL_MESSAGE_ID_DOMAIN = env.str("EMAIL_MESSAGE_ID_DOMAIN", default="")
# Replies by email (docs/email.md): Reply-To is reply+<token>@INBOUND_EMAIL_DOMAIN (unset: emails
# ask the customer to answer in the chat), and the inbound service posts each mail to
# /api/v1/inbound-email/ with "Authorization: Bearer <INBOUND_EMAIL_SECRET>" (unset: 404).
INBOUND_EMAIL_DOMAIN = env.str("INBOUND_EMAIL_DOMAIN", default="")
INBOUND_EMAIL_SECRET = env.str("INBOUND_EMAIL_SECRET", default="")
INBOUND_EMAIL_MAX_BYTES = env.int("INBOUND_EMAIL_MAX_BYTES", default=1024 * 1024)
# Seconds an agent with no inbox open is left before being emailed what needs them (a
# conversation assigned, a customer back): what happens meanwhile goes in the same email.
AGENT_NOTICE_DELAY = env.float("AGENT_NOTICE_DELAY", default=120.0)

# --- Security (production: DEBUG=0) ---------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the inbox's JavaScript reads it for session-authenticated API calls
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "omnichannel.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"


def _static_file_headers(headers, path: str, url: str) -> None:
    """ServeStatic answers above SecurityMiddleware (omnichannel/realtime/http.py): its nosniff here.
    The setting is read when ServeStatic builds its table of files, not at import."""
    from django.conf import settings

    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers["X-Content-Type-Options"] = "nosniff"


SERVESTATIC_ADD_HEADERS_FUNCTION = _static_file_headers
# Content-Security-Policy of every response (omnichannel/csp.py; docs/reliability.md): scripts
# and styles from this server only, inline ones only with the response's nonce, no framing
# (the widget's panel relaxes frame-ancestors to its allowed origins), the WebSocket allowed.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "font-src": [CSP.SELF],
    "connect-src": [CSP.SELF, CSP.WEBSOCKET_SELF],
    "frame-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=True)
    if env_bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# --- Omnichannel ----------------------------------------------------------------------------------
# Where seed_demo keeps the demo site's private key and the demo passwords (never in git).
DEMO_DIR = VAR_DIR / "demo"

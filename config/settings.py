"""LineSight settings.

Every environment variable is read here, once. The defaults are the embedded
shape (SQLite, in-memory channel layer, media in ``var/``); ``DATABASE_URL``,
``REDIS_URL`` and ``LINESIGHT_S3_BUCKET`` switch to the plant shape. See the
README's configuration table for the full list.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.channel_layers import BACKENDS, redis_channel_layer

BASE_DIR = Path(__file__).resolve().parent.parent


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_bool(name: str, default: bool = False) -> bool:
    raw = _env(name)
    if not raw:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def _env_int(name: str, default: int) -> int:
    raw = _env(name)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}.") from None


def _env_float(name: str, default: float) -> float:
    raw = _env(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}.") from None


def _env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in _env(name, default).split(",") if item.strip()]


# --- Core -----------------------------------------------------------------

# TensorFlow reads this once, when it is first imported (by an app, after
# these settings): set here, every process (server, worker, manage.py) keeps
# TensorFlow's C++ INFO and WARNING lines out of the console unless told otherwise.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEBUG = _env_bool("LINESIGHT_DEBUG")
DATA_DIR = Path(_env("LINESIGHT_DATA_DIR") or BASE_DIR / "var").resolve()


def _secret_key() -> str:
    """The key from the environment, else from a file (``make demo`` writes ``var/secret_key``)."""
    key = _env("LINESIGHT_SECRET_KEY")
    if key:
        return key
    named = _env("LINESIGHT_SECRET_KEY_FILE")
    path = Path(named) if named else DATA_DIR / "secret_key"
    if named or path.is_file():
        try:
            key = path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"The secret key file {path} is not readable: {exc}."
            ) from None
        if not key:
            raise ImproperlyConfigured(f"The secret key file {path} is empty.")
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "LINESIGHT_SECRET_KEY is not set. Set it to a long random string, or "
            "LINESIGHT_SECRET_KEY_FILE to a file holding one (make demo writes "
            f"{DATA_DIR / 'secret_key'}), or set LINESIGHT_DEBUG=true on a development machine."
        )
    return "insecure-development-key-only-for-LINESIGHT_DEBUG"


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = _env_list("LINESIGHT_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = _env_list("LINESIGHT_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "import_export",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "common",
    "masterdata",
    "models_registry",
    "inspection",
    "reports",
    "integrations",
    "demo",
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
    "common.api.DatabaseUnavailableMiddleware",  # 503 + Retry-After while the DB is away
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "masterdata.account.menu",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------

# WAL lets the dashboard read while a frame is written; IMMEDIATE takes the
# write lock up front instead of failing half-way through a transaction when
# several workers write; the timeout waits for that lock instead of erroring.
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

DATABASE_URL = _env("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'linesight.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {**SQLITE_OPTIONS, **DATABASES["default"].get("OPTIONS", {})}
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in a thread of its own, so persistent
    # connections are never reused: each frame would open a new connection
    # (several ms). A pool per worker process hands connections across threads.
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        "pool": {
            "min_size": 2,
            "max_size": _env_int("LINESIGHT_DB_POOL_SIZE", 10),
            "timeout": 10,
        },
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ---------------------------------------------------------------

REDIS_URL = _env("REDIS_URL")
CHANNEL_LAYER_KIND = _env("LINESIGHT_CHANNEL_LAYER", "redis")
if CHANNEL_LAYER_KIND not in BACKENDS:
    raise ImproperlyConfigured(
        f"LINESIGHT_CHANNEL_LAYER must be redis or redis-pubsub, not {CHANNEL_LAYER_KIND!r}."
    )
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": redis_channel_layer(
            REDIS_URL,
            kind=CHANNEL_LAYER_KIND,
            prefix=_env("LINESIGHT_CHANNEL_PREFIX", "linesight"),
        )
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Plant integration: MQTT (off unless LINESIGHT_MQTT_HOST is set) --------

# Judged frames, decisions, deployments and finished jobs go to common.outbox in
# the transaction that records them; the MQTT sender publishes from there.
MQTT_HOST = _env("LINESIGHT_MQTT_HOST")
MQTT_PORT = _env_int("LINESIGHT_MQTT_PORT", 1883)
MQTT_USERNAME = _env("LINESIGHT_MQTT_USERNAME")
MQTT_PASSWORD = _env("LINESIGHT_MQTT_PASSWORD")
# TLS: on when asked or when a CA file is given; a client certificate is optional.
MQTT_TLS_CA_FILE = _env("LINESIGHT_MQTT_TLS_CA_FILE")
MQTT_TLS = _env_bool("LINESIGHT_MQTT_TLS", default=bool(MQTT_TLS_CA_FILE))
MQTT_TLS_CERT_FILE = _env("LINESIGHT_MQTT_TLS_CERT_FILE")
MQTT_TLS_KEY_FILE = _env("LINESIGHT_MQTT_TLS_KEY_FILE")
MQTT_TOPIC_PREFIX = _env("LINESIGHT_MQTT_TOPIC_PREFIX", "linesight").strip("/")
# Each sender process connects as "<prefix>-<hostname>-<pid>".
MQTT_CLIENT_ID_PREFIX = _env("LINESIGHT_MQTT_CLIENT_ID_PREFIX", "linesight")
MQTT_KEEPALIVE_SECONDS = _env_int("LINESIGHT_MQTT_KEEPALIVE", 30)
# How the idle sender looks for new events: 0 = LISTEN/NOTIFY on PostgreSQL and a
# 5 ms poll on SQLite; N > 0 = poll every N ms on either.
MQTT_IDLE_POLL_MS = _env_int("LINESIGHT_MQTT_IDLE_POLL_MS", 0)
# Rows both the MQTT sender and the webhooks have handed on are deleted after this.
OUTBOX_RETENTION_HOURS = _env_float("LINESIGHT_OUTBOX_RETENTION_HOURS", 24.0)
if MQTT_TOPIC_PREFIX and any(c in MQTT_TOPIC_PREFIX for c in "+#"):
    raise ImproperlyConfigured("LINESIGHT_MQTT_TOPIC_PREFIX may not contain '+' or '#'.")

# --- Plant integration: webhooks (subscriptions in admin and /api/v1/webhooks/) --

# The fan-out (manage.py webhooks_dispatch, started by run_workers) turns outbox
# messages into deliveries; the task queue "webhooks" posts them, signed.
# Receivers on private, loopback or link-local addresses (the plant's own network)
# are refused unless this is on.
WEBHOOKS_ALLOW_PRIVATE = _env_bool("LINESIGHT_WEBHOOKS_ALLOW_PRIVATE", False)
WEBHOOKS_TIMEOUT_SECONDS = _env_float("LINESIGHT_WEBHOOKS_TIMEOUT_SECONDS", 5.0)
WEBHOOKS_MAX_RESPONSE_BYTES = _env_int("LINESIGHT_WEBHOOKS_MAX_RESPONSE_BYTES", 64 * 1024)
# Retries on 5xx, 408, 429, timeouts and refused connections: first after this, then
# times WEBHOOKS_RETRY_FACTOR each time (10 s, 30 s, 1.5 min, ...) up to the cap, +-20 %.
WEBHOOKS_RETRY_FIRST_SECONDS = _env_float("LINESIGHT_WEBHOOKS_RETRY_FIRST_SECONDS", 10.0)
WEBHOOKS_RETRY_FACTOR = _env_float("LINESIGHT_WEBHOOKS_RETRY_FACTOR", 3.0)
WEBHOOKS_RETRY_MAX_SECONDS = _env_float("LINESIGHT_WEBHOOKS_RETRY_MAX_SECONDS", 3600.0)
# A subscription is paused after this many failed attempts in a row.
WEBHOOKS_PAUSE_AFTER_FAILURES = _env_int("LINESIGHT_WEBHOOKS_PAUSE_AFTER_FAILURES", 10)
# How often the fan-out looks at the outbox when it found nothing.
WEBHOOKS_POLL_SECONDS = _env_float("LINESIGHT_WEBHOOKS_POLL_SECONDS", 0.2)
# Delivered and failed deliveries stay in the log (admin, API) this long.
WEBHOOKS_LOG_RETENTION_HOURS = _env_float("LINESIGHT_WEBHOOKS_LOG_RETENTION_HOURS", 72.0)
# A delivery still pending after this long (its webhook paused or its receiver
# down for days) is given up: failed, counted on the webhook, then pruned like the log.
# 0 keeps pending deliveries until they go out, however many pile up.
WEBHOOKS_PENDING_MAX_HOURS = _env_float("LINESIGHT_WEBHOOKS_PENDING_MAX_HOURS", 168.0)

# --- Background tasks (validation, imports, evaluations, training, exports) --

# One queue per kind of job (common.jobs.register_job_kind names one). The
# worker runs one db_worker process per group (manage.py run_workers), so a
# long evaluation or training never delays a validation or an export.
TASK_WORKER_GROUPS = [
    ["default", "validation", "exports"],
    ["imports", "retention"],
    ["evaluations", "training"],
    ["webhooks"],  # deliveries wait for receivers (timeouts): never behind a job
]
# Seconds an idle worker waits before looking for tasks again (1 unless named here):
# a webhook's delivery should not wait a second for its worker to look.
TASK_WORKER_POLL_SECONDS = {"webhooks": 0.2}
TASKS = {
    "default": {
        "BACKEND": "django_tasks_db.DatabaseBackend",
        "QUEUES": [queue for group in TASK_WORKER_GROUPS for queue in group],
    }
}
# Long-running manage.py commands (name and arguments) run_workers starts and
# supervises next to the task workers.
WORKER_COMMANDS = [["webhooks_dispatch"]]
if MQTT_HOST:
    WORKER_COMMANDS.append(["mqtt_sender"])  # integrations.mqtt: the outbox to the broker
# A running job whose heartbeat (its progress reports) is older than this is
# failed by the sweep: its worker died. The sweep runs this often in run_workers.
JOB_HEARTBEAT_TIMEOUT_SECONDS = _env_int("LINESIGHT_JOB_HEARTBEAT_TIMEOUT_SECONDS", 300)
JOB_SWEEP_INTERVAL_SECONDS = _env_int("LINESIGHT_JOB_SWEEP_INTERVAL_SECONDS", 60)
# Jobs run_workers enqueues on their own, kind -> seconds between runs (0 = never),
# the first one interval after it starts; never a second while one is queued or running.
# Finished runs of the periodic kinds are deleted after this many days (the sweep does it).
PERIODIC_JOB_KEEP_DAYS = _env_int("LINESIGHT_PERIODIC_JOB_KEEP_DAYS", 7)
PERIODIC_JOBS = {
    "orphans_sweep": _env_int("LINESIGHT_ORPHAN_SWEEP_INTERVAL_SECONDS", 3600),
    "retention": _env_int("LINESIGHT_RETENTION_INTERVAL_SECONDS", 3600),
    # Report rollups: recompute the station-days touched since the last run.
    "rollups_refresh": _env_int("LINESIGHT_ROLLUP_INTERVAL_SECONDS", 30),
}

# --- Files ------------------------------------------------------------------

MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "/media/"  # never routed: files are served by views that check permissions
STATIC_ROOT = DATA_DIR / "static"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

S3_BUCKET = _env("LINESIGHT_S3_BUCKET")
if S3_BUCKET:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": _env("LINESIGHT_S3_ENDPOINT_URL") or None,
            "region_name": _env("LINESIGHT_S3_REGION") or None,
            "location": _env("LINESIGHT_S3_PREFIX"),
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Uploads: frames are small; model artifacts can be large and go to disk.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = 4
FILE_UPLOAD_PERMISSIONS = 0o640

# --- Auth -------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"  # config.views.landing: the first page the person's role may open
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Security ---------------------------------------------------------------

# Behind a TLS-terminating proxy (the plant shape) every cookie is secure and
# browsers are told to stay on HTTPS. The embedded demo serves plain HTTP on
# 127.0.0.1 and leaves this off.
HTTPS = _env_bool("LINESIGHT_HTTPS")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- Internationalisation ---------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # stored times are UTC; each plant reports in its own zone
USE_I18N = True
USE_TZ = True

# --- REST framework ---------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "masterdata.authentication.StationTokenAuthentication",
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "LineSight API",
    "DESCRIPTION": (
        "Frames from line devices, the model registry for pipelines, inspections, "
        "verifications and reports."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The schema follows the API's own authentication (session, user token,
    # station token); anonymous callers get 401. The docs pages send people to log in.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Swagger UI and ReDoc from this server's static files: plants have no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge fetched from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # 400/401/403/404/415/503 as DRF and common.api answer them, on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.api.document_error_responses",
    ],
}

# --- Spreadsheet import/export (django-import-export, master data in admin) ---

# An import runs in one transaction, rolled back when any row is wrong.
IMPORT_EXPORT_USE_TRANSACTIONS = True
# Empty rows left at the end of a spreadsheet are formatting, not data.
IMPORT_EXPORT_IMPORT_IGNORE_BLANK_LINES = True
# A text cell starting with '=' is exported as text, never as a formula to run.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = True

# --- LineSight ----------------------------------------------------------------

LINESIGHT = {
    # Frames
    "MAX_FRAME_BYTES": _env_int("LINESIGHT_MAX_FRAME_BYTES", 10 * 1024 * 1024),
    "MAX_FRAME_PIXELS": _env_int("LINESIGHT_MAX_FRAME_PIXELS", 40_000_000),
    "INFERENCE_THREADS": _env_int("LINESIGHT_INFERENCE_THREADS", 1),
    "RUNTIME": _env("LINESIGHT_RUNTIME", "models_registry.runtime.tensorflow.TensorFlowRuntime"),
    # Overload: frames one worker process judges at once; more are answered 503 at
    # once instead of queueing. 8 suits one worker per core (2 cores: 2 workers).
    "MAX_FRAMES_IN_FLIGHT": _env_int("LINESIGHT_MAX_FRAMES_IN_FLIGHT", 8),
    # Frames per second a station may send (per worker process), with bursts of
    # this many; faster is answered 429. 0 = no limit.
    "STATION_FRAME_RATE": _env_float("LINESIGHT_STATION_FRAME_RATE", 30.0),
    "STATION_FRAME_BURST": _env_int("LINESIGHT_STATION_FRAME_BURST", 30),
    "MODEL_CACHE_DIR": DATA_DIR / "model-cache",
    # Model artifacts and their validation sandbox
    "MAX_ARTIFACT_BYTES": _env_int("LINESIGHT_MAX_ARTIFACT_BYTES", 1024 * 1024 * 1024),
    "ARCHIVE_MAX_ENTRIES": _env_int("LINESIGHT_ARCHIVE_MAX_ENTRIES", 10_000),
    "ARCHIVE_MAX_UNPACKED_BYTES": _env_int(
        "LINESIGHT_ARCHIVE_MAX_UNPACKED_BYTES", 4 * 1024 * 1024 * 1024
    ),
    "ARCHIVE_MAX_RATIO": _env_int("LINESIGHT_ARCHIVE_MAX_RATIO", 100),
    "SANDBOX_TIMEOUT_SECONDS": _env_int("LINESIGHT_SANDBOX_TIMEOUT_SECONDS", 600),
    "SANDBOX_MEMORY_MB": _env_int("LINESIGHT_SANDBOX_MEMORY_MB", 8192),
    # Where validation unpacks artifacts (one fresh folder per run, always removed);
    # empty means the system's temporary folder.
    "SANDBOX_WORK_DIR": _env("LINESIGHT_SANDBOX_WORK_DIR") or None,
    "TFLITE_PARITY_TOLERANCE": _env_float("LINESIGHT_TFLITE_PARITY_TOLERANCE", 1e-3),
    # Orphans sweep: frame files and rows younger than this are never touched.
    "ORPHAN_GRACE_SECONDS": _env_int("LINESIGHT_ORPHAN_GRACE_SECONDS", 3600),
    # The periodic sweep looks at the frames of the last so many days (a crash leaves
    # its orphans around the time it happened); manage.py orphans_sweep at all of them.
    "ORPHAN_SWEEP_DAYS": _env_int("LINESIGHT_ORPHAN_SWEEP_DAYS", 2),
    # Report rollups: how far before its watermark a refresh (and a report) looks for
    # touched station-days; longer than any frame's or decision's transaction.
    "ROLLUP_OVERLAP_SECONDS": _env_int("LINESIGHT_ROLLUP_OVERLAP_SECONDS", 300),
    # Reports count the station-days touched since the last refresh from the raw rows
    # (current figures); off, they read only rollups and show their lag (large plants).
    "REPORTS_CURRENT": _env_bool("LINESIGHT_REPORTS_CURRENT", True),
    # Retention: rows per batch (one short transaction each) and a pause after each, so
    # frames keep the CPU and the database. Storage: below this free
    # space the dashboards warn; S3 has no free space of its own, so its capacity is set
    # here (0: unknown, no days-left figure); a refused write is retried after so long.
    "RETENTION_BATCH_SIZE": _env_int("LINESIGHT_RETENTION_BATCH_SIZE", 500),
    "RETENTION_PAUSE_SECONDS": _env_float("LINESIGHT_RETENTION_PAUSE_SECONDS", 0.05),
    "STORAGE_MIN_FREE_BYTES": _env_int("LINESIGHT_STORAGE_MIN_FREE_BYTES", 20 * 1024**3),
    "STORAGE_CAPACITY_BYTES": _env_int("LINESIGHT_STORAGE_CAPACITY_BYTES", 0),
    "STORAGE_RETRY_AFTER_SECONDS": _env_int("LINESIGHT_STORAGE_RETRY_AFTER_SECONDS", 60),
    # Datasets: one image, and an uploaded archive's entries and unpacked size
    "DATASET_MAX_IMAGE_BYTES": _env_int("LINESIGHT_DATASET_MAX_IMAGE_BYTES", 64 * 1024 * 1024),
    "DATASET_ARCHIVE_MAX_ENTRIES": _env_int("LINESIGHT_DATASET_ARCHIVE_MAX_ENTRIES", 200_000),
    "DATASET_ARCHIVE_MAX_UNPACKED_BYTES": _env_int(
        "LINESIGHT_DATASET_ARCHIVE_MAX_UNPACKED_BYTES", 16 * 1024**3
    ),
    # Training runs in a process of its own: memory cap, wall-time cap (0: the run's own
    # budget x 1.5 + 300 s), TensorFlow threads, and a CPU priority below the frames'.
    "TRAINING_MEMORY_MB": _env_int("LINESIGHT_TRAINING_MEMORY_MB", 8192),
    "TRAINING_TIMEOUT_SECONDS": _env_int("LINESIGHT_TRAINING_TIMEOUT_SECONDS", 0),
    "TRAINING_THREADS": _env_int("LINESIGHT_TRAINING_THREADS", os.cpu_count() or 2),
    "TRAINING_NICE": _env_int("LINESIGHT_TRAINING_NICE", 10),
    # Review
    "REVIEW_CLAIM_SECONDS": _env_int("LINESIGHT_REVIEW_CLAIM_SECONDS", 120),
    # Reports
    "EXPORT_INLINE_MAX_ROWS": _env_int("LINESIGHT_EXPORT_INLINE_MAX_ROWS", 50_000),
    # The demo's trained model, generated logins and frames
    "DEMO_DIR": DATA_DIR / "demo",
}

# --- Logging ----------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # A refused page is a person without the role, not a fault: one line, no traceback.
    # A 503 is a refusal the device retries: a warning, not an error.
    "filters": {
        "forbidden_in_one_line": {"()": "common.log_filters.ForbiddenInOneLine"},
        "refusal_as_warning": {"()": "common.log_filters.RefusalAsWarning"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["forbidden_in_one_line", "refusal_as_warning"],
        }
    },
    "root": {"handlers": ["console"], "level": _env("LINESIGHT_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # TensorFlow's Python side ("Assets written to ...") and absl log at INFO.
        "tensorflow": {"level": "WARNING"},
        "absl": {"level": "WARNING"},
    },
}

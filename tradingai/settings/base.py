"""Settings shared by every environment. Values come from the environment (django-environ);
`local`, `test` and `production` only change what differs between them."""

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import environ
import sentry_sdk
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

# OpenBLAS's threads (numpy's and scipy's) spin for 2^28 cycles after each call before they sleep; the
# outcome model's fits last milliseconds, so its waiting thread burned more CPU than the fits themselves (a
# fit on 3,013 calls: 72 ms of CPU, 27 ms at 4, OpenBLAS's least: sleep almost at once). The work is split
# among the threads as before, so every result is the same to the bit. Read when the library loads: here,
# before anything imports numpy.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)
VAR_DIR = Path(env.str("TRADINGAI_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    "django_prometheus",  # /metrics (tradingai.metrics): the request metrics of its middleware
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served by us: no CDN
    "axes",  # the sign-in lockout (accounts.lockout)
    "django_otp",
    "django_otp.plugins.otp_totp",  # two-factor authentication (accounts.two_factor)
    "accounts",
    "market",
    "automation",
    "learning",
    "trades",
    "notifications",
]

MIDDLEWARE = [
    "tradingai.middleware.HealthCheckMiddleware",  # /healthz, before anything that redirects or signs in
    "django_prometheus.middleware.PrometheusBeforeMiddleware",  # with its After, last: times every request
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # the headers of every response: see "Security headers" below
    "django_permissions_policy.PermissionsPolicyMiddleware",
    "tradingai.middleware.ApiNoStoreMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a second factor
    "accounts.middleware.UserTimeZoneMiddleware",  # the pages' dates in the user's time zone
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees the flag the lockout sets on a refused sign-in and answers for it.
    "axes.middleware.AxesMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tradingai.urls"
WSGI_APPLICATION = "tradingai.wsgi.application"
ASGI_APPLICATION = "tradingai.asgi.application"

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

# --- Database -------------------------------------------------------------------------------------
# SQLite under var/ unless DATABASE_URL says otherwise. Web, worker and beat are three processes on one
# file: WAL lets readers run beside the writer, the busy timeout makes a writer wait instead of failing,
# and IMMEDIATE transactions take the write lock up front so two writers cannot deadlock on upgrade.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
}


def database_from_env(default_sqlite: Path) -> dict:
    db = env.db_url("DATABASE_URL", default=f"sqlite:///{default_sqlite}")
    if db["ENGINE"] == "django.db.backends.sqlite3":
        db["OPTIONS"] = {**SQLITE_OPTIONS, **db.get("OPTIONS", {})}
    elif pool_size := env.int("DATABASE_POOL_MAX_SIZE", default=10):
        # A pool per process (psycopg_pool): the io worker's cycle hands its connection back while it waits
        # seconds on the analyst (automation.analysis), so a handful of connections serve many threads and
        # PostgreSQL's max_connections stops bounding how many cycles wait at once.
        db["OPTIONS"] = {
            "pool": {"min_size": 1, "max_size": pool_size, "timeout": 30},
            **db.get("OPTIONS", {}),
        }
        db["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django refuses both at once
        # The pool checks a connection before handing it out: one idle through a database restart (as a
        # cycle's is while its analyst waits) would otherwise fail the next query, and lose the analysis.
        db["CONN_HEALTH_CHECKS"] = True
    else:
        db["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
        db["CONN_HEALTH_CHECKS"] = True
    db["ATOMIC_REQUESTS"] = False
    return db


DATABASES = {"default": database_from_env(VAR_DIR / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ---------------------------------------------------------------------------------------
# One cache that every process shares, for the throttles (DRF's, the password-reset limits): a count kept
# in each process's memory would let a client spread its guesses over the processes. Redis when CACHE_URL
# names one (redis://host:6379/1), else a table of the database (created by the migration
# accounts.0006 and by `createcachetable`).
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://tradingai_cache")}
if CACHES["default"]["BACKEND"].endswith("DatabaseCache"):
    # Past MAX_ENTRIES the table is culled, throttle counts with it: room for every client of a busy hour.
    CACHES["default"].setdefault("OPTIONS", {})["MAX_ENTRIES"] = 100_000

# --- Accounts -------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The client's address is read from X-Forwarded-For only behind this many proxies of ours, each of which
# appends the address it saw (the right-most entries): with 0, REMOTE_ADDR, since anyone can send the header.
# DRF's throttles, the sign-in lockout and the reset limits all read it (accounts.lockout.client_address).
TRUSTED_PROXIES = env.int("TRADINGAI_TRUSTED_PROXIES", default=0)
# Sign-in (the site, the admin and the API's token endpoint) is refused after this many failures for one
# e-mail address from one client address, or this many from one client address whatever the e-mail, until
# the cool-off has passed since the last failure (django-axes, counted in the database so every process
# agrees). Keyed by the pair, so that no one can lock an owner out from an address of their own.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before a password is checked
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURES_PER_ADDRESS = env.int("TRADINGAI_LOGIN_FAILURES_PER_ADDRESS", default=20)
AXES_FAILURE_LIMIT = env.int("TRADINGAI_LOGIN_FAILURES_PER_EMAIL_AND_ADDRESS", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("TRADINGAI_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "accounts.lockout.LockoutHandler"  # adds the per-address limit
AXES_RESET_ON_SUCCESS = True  # a success starts the pair's count afresh
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.lockout.attempted_email"
AXES_CLIENT_IP_CALLABLE = "accounts.lockout.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.lockout.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["password", "email", "username"]
# Successful sign-ins are not logged by axes (User.last_login has the latest): its log is a write, and a
# session made early, on every sign-in.
AXES_DISABLE_ACCESS_LOG = True
# Password-reset e-mails: at most this many per hour to one address, and requested from one client address.
PASSWORD_RESETS_PER_HOUR = env.int("TRADINGAI_PASSWORD_RESETS_PER_HOUR", default=5)
OTP_TOTP_ISSUER = "TradingAI"  # the name authenticator apps show next to the code
# How many bots a user may run at once when their plan does not say.
DEFAULT_MAX_RUNNING_BOTS = env.int("TRADINGAI_DEFAULT_MAX_RUNNING_BOTS", default=3)
# The other quotas of a user without a plan (accounts.quotas; a plan's are set in the admin). A cap bounds
# what one account can make the platform hold or spend: rows, worker time, paid analyst calls.
DEFAULT_MAX_BOTS = env.int("TRADINGAI_DEFAULT_MAX_BOTS", default=20)
DEFAULT_MAX_EXCHANGE_ACCOUNTS = env.int("TRADINGAI_DEFAULT_MAX_EXCHANGE_ACCOUNTS", default=10)
DEFAULT_MAX_API_TOKENS = env.int("TRADINGAI_DEFAULT_MAX_API_TOKENS", default=10)
DEFAULT_MAX_MODEL_CONNECTIONS = env.int("TRADINGAI_DEFAULT_MAX_MODEL_CONNECTIONS", default=10)
DEFAULT_RUN_NOW_PER_HOUR = env.int("TRADINGAI_DEFAULT_RUN_NOW_PER_HOUR", default=10)
# 3 running bots on 15-minute candles make 288 cycles a day, with room for run-now and retries.
DEFAULT_CYCLES_PER_DAY = env.int("TRADINGAI_DEFAULT_CYCLES_PER_DAY", default=500)
DEFAULT_MONTHLY_LLM_USD = Decimal(env.str("TRADINGAI_DEFAULT_MONTHLY_LLM_USD", default="10.00"))
# Backtests (automation.backtests) take a default worker's core while they run: one at a time per user, and
# at most this many candles each (the shipped EUR/USD hours are 5,000; a replay runs some hundreds a second).
DEFAULT_BACKTESTS_AT_ONCE = env.int("TRADINGAI_DEFAULT_BACKTESTS_AT_ONCE", default=1)
DEFAULT_BACKTEST_MAX_CANDLES = env.int("TRADINGAI_DEFAULT_BACKTEST_MAX_CANDLES", default=10000)

# Exchange API keys are encrypted with the first of these Fernet keys and decrypted with any of them,
# so a key can be rotated: put the new key first, run `manage.py rotate_encryption_keys`, drop the old.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])

# consolemail:// prints e-mails (password resets) in the web log; smtp://user:pass@host:587 sends.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="TradingAI <noreply@tradingai.local>")

# --- Trading --------------------------------------------------------------------------------------
# Live orders are never sent unless the operator turns this on and the bot's owner confirms per bot.
LIVE_TRADING_ENABLED = env.bool("TRADINGAI_LIVE_TRADING", default=False)
# Paper fills: the market price moved against the order by the slippage, and a taker fee on the notional.
SIMULATION_SLIPPAGE_PCT = Decimal(env.str("TRADINGAI_SIMULATION_SLIPPAGE_PCT", default="0.05"))
SIMULATION_FEE_PCT = Decimal(env.str("TRADINGAI_SIMULATION_FEE_PCT", default="0.10"))
# A trade still open after this many candles is closed at the market (TIME_EXIT).
MAX_HOLDING_CANDLES = env.int("TRADINGAI_MAX_HOLDING_CANDLES", default=48)

# --- Security headers (docs/security.md, "Headers") ---------------------------------------------------
# No page runs a script of its own making: scripts are static files, plot data sits in json_script blocks
# (data, never run). plotly.js writes its few style rules into <style> elements it creates; a <link> with
# the id and class plotly looks for (templates/_plot_scripts.html) holds those rules instead, so styles are
# 'self' too. Nothing is framed, no page posts elsewhere, and the favicon is a static file.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
# Powerful browser features no page uses, switched off for the site and anything it could embed.
PERMISSIONS_POLICY = {
    feature: []
    for feature in (
        "accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "hid", "magnetometer",
        "microphone", "midi", "payment", "serial", "usb",
    )
}  # fmt: skip
# The OpenAPI schema and Swagger UI (/api/schema/, /api/docs/) for signed-in users (or a token) only,
# unless this is on: they map every operation for an attacker too.
API_DOCS_PUBLIC = env.bool("TRADINGAI_API_DOCS_PUBLIC", default=False)

# --- REST API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its "WWW-Authenticate: Token" makes a request without credentials a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only: a form body cannot carry null, lists of objects or a missing boolean as JSON can (DRF reads
    # an absent checkbox as false, which would switch a kill switch off). Depth-limited: see api_parsers.
    "DEFAULT_PARSER_CLASSES": ["core.api_parsers.DepthLimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("TRADINGAI_API_USER_RATE", default="3600/hour"),
        "anon": env.str("TRADINGAI_API_ANON_RATE", default="120/hour"),
        "login": env.str("TRADINGAI_API_LOGIN_RATE", default="20/hour"),
    },
    "NUM_PROXIES": TRUSTED_PROXIES,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TradingAI API",
    "DESCRIPTION": "Bots, their runs, analyses and trades, and what they learned. Authenticate with "
    "`Authorization: Token <token>` (POST /api/v1/auth/token/ issues one) or a browser session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The fourth choice set of a field named `status`: named here, as drf-spectacular cannot name it well.
    "ENUM_NAME_OVERRIDES": {"BacktestStatusEnum": "automation.models.Backtest.Status"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tradingai.api_schema.document_errors",
    ],
}

# --- Learning (formulas and the reasons for these defaults: docs/learning.md) ---------------------------
# A result within this band around zero, in percent of the position net of fees, is a BREAKEVEN.
BREAKEVEN_BAND_PCT = Decimal(env.str("TRADINGAI_BREAKEVEN_BAND_PCT", default="0.1"))
# Below this many samples a figure is shown with its n but neither ranked, cited in the prompt nor learned
# from: best/worst timeframe, failures, recommendations, the policy's threshold and avoid-conditions.
LEARNING_MIN_SAMPLES = env.int("TRADINGAI_LEARNING_MIN_SAMPLES", default=30)
# The size factor is this fraction of the Kelly stake over the bot's risk per trade, capped.
KELLY_FRACTION = env.float("TRADINGAI_KELLY_FRACTION", default=0.1)
SIZE_FACTOR_CAP = env.float("TRADINGAI_SIZE_FACTOR_CAP", default=1.5)
# The adaptive policy adapts only on evidence (docs/learning.md, "The adaptive policy"): the false discovery
# rate it allows across all the conditions it tries (Benjamini-Hochberg), the half-lives (in candles of the
# bot's timeframe) of the evidence it adopts a condition on and of the evidence that drops it, the blocks its
# totals are kept in, and how many more resolved calls it waits for before it learns again.
POLICY_FDR = env.float("TRADINGAI_POLICY_FDR", default=0.05)
POLICY_HALF_LIFE_CANDLES = env.int("TRADINGAI_POLICY_HALF_LIFE_CANDLES", default=2000)
POLICY_RECENT_HALF_LIFE_CANDLES = env.int("TRADINGAI_POLICY_RECENT_HALF_LIFE_CANDLES", default=200)
POLICY_BLOCK_CANDLES = env.int("TRADINGAI_POLICY_BLOCK_CANDLES", default=50)
# The span of time whose calls count as one cluster in the policy's standard errors (docs/learning.md).
POLICY_CLUSTER_CANDLES = env.int("TRADINGAI_POLICY_CLUSTER_CANDLES", default=50)
POLICY_RELEARN_CALLS = env.int("TRADINGAI_POLICY_RELEARN_CALLS", default=10)
# Before a bot has the evidence to learn from, it trades at this fraction of its risk per trade: enough to
# show what it does, too little to lose much while nothing is known.
POLICY_PROBE_SIZE = env.float("TRADINGAI_POLICY_PROBE_SIZE", default=0.05)
# The outcome model (learning/ml.py) is trained once a user has this many resolved BUY/SELL calls: with
# five time-ordered splits, its first window then learns from 20 and tests on 20 (four times the 30 above).
ML_MIN_SAMPLES = env.int("TRADINGAI_ML_MIN_SAMPLES", default=120)
# A user's model is trained again once the active one is this old (or as soon as it was switched off).
ML_RETRAIN_HOURS = env.float("TRADINGAI_ML_RETRAIN_HOURS", default=24.0)
# ...and only once there are this share more calls than it was trained on (and at least
# LEARNING_MIN_SAMPLES more): a model fitted on 1,000 calls moves little with 30 more, and retraining it
# daily would make training most of a replay's time.
ML_RETRAIN_GROWTH = env.float("TRADINGAI_ML_RETRAIN_GROWTH", default=0.2)

# --- Market data ----------------------------------------------------------------------------------
# Bound on every call to an exchange's public API; ccxt's own rate limiter stays on.
MARKET_DATA_TIMEOUT_SECONDS = env.float("TRADINGAI_MARKET_DATA_TIMEOUT_SECONDS", default=10.0)

# --- Charts ---------------------------------------------------------------------------------------
CHART_WIDTH, CHART_HEIGHT = 1280, 720
CHROMIUM_BINARY = env.str("TRADINGAI_CHROMIUM_BINARY", default="/usr/bin/chromium")
CHROMEDRIVER_PATH = env.str("TRADINGAI_CHROMEDRIVER_PATH", default="/usr/bin/chromedriver")
# A TradingView page that has not rendered by then is a failed capture, not a stuck worker.
CHART_CAPTURE_TIMEOUT_SECONDS = env.float("TRADINGAI_CHART_CAPTURE_TIMEOUT_SECONDS", default=30.0)
# Chromium's resolver, in every environment: no host name but TradingView's resolves (IP literals do not
# either), so a chart page, its redirects and its scripts can reach nothing inside our network. Not read from
# the environment on purpose: widening it is a code change that a reviewer sees.
CHART_CAPTURE_HOST_RULES = "MAP * ~NOTFOUND , EXCLUDE tradingview.com , EXCLUDE *.tradingview.com"

# --- Analysts -------------------------------------------------------------------------------------
# Without a key the technical analyst is the default. OPENAI_BASE_URL points the official SDK at any
# OpenAI-compatible server (a local model server, or the stand-in the tests run on 127.0.0.1).
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="") or None
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
OPENAI_TIMEOUT_SECONDS = env.float("OPENAI_TIMEOUT_SECONDS", default=60.0)
OPENAI_MAX_RETRIES = env.int("OPENAI_MAX_RETRIES", default=2)
# USD per million tokens, for the cost kept with each analysis (gpt-4o-mini's list prices).
OPENAI_INPUT_USD_PER_MTOK = env.float("OPENAI_INPUT_USD_PER_MTOK", default=0.15)
OPENAI_OUTPUT_USD_PER_MTOK = env.float("OPENAI_OUTPUT_USD_PER_MTOK", default=0.60)
# These two price a model the operator's table of prices (automation.ModelPrice, in the admin) does not list.
# Users may bring their own model (accounts.ModelConnection): an OpenAI-compatible server and its key. Its
# base URL must be a public https server unless this is on: then servers on the operator's own networks
# (127.0.0.1, 10.0.0.0/8, 192.168.0.0/16, ..., over http too) are taken, for self-hosters running Ollama or
# vLLM beside the platform. Off in production: on a shared server it would let any user make the platform
# call what only it can reach (core/outbound.py).
ALLOW_PRIVATE_MODEL_SERVERS = env.bool("TRADINGAI_ALLOW_PRIVATE_MODEL_SERVERS", default=False)

# --- I18N, static, media --------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["tradingai.formats"]  # one date format on every page (tradingai/formats/en/formats.py)

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "tradingai.staticfinders.PackageFileFinder",  # plotly.js from the plotly wheel
]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Cycles ---------------------------------------------------------------------------------------
# Deadlines of a cycle's calls to the outside world that no client timeout bounds as a whole: the analyst
# (the OpenAI SDK's timeout is per attempt, and it retries) and the chart (a render, or a TradingView
# capture that may first wait for the browser). Past it the call is abandoned and the run fails at its step
# (automation.analysis.within): Celery's time limits do nothing on the io queue's thread pool.
ANALYST_DEADLINE_SECONDS = env.float("TRADINGAI_ANALYST_DEADLINE_SECONDS", default=180.0)
CHART_DEADLINE_SECONDS = env.float("TRADINGAI_CHART_DEADLINE_SECONDS", default=90.0)
# How often, in hours of market time, the learned section of a bot's prompt is refreshed: every cycle of a
# window (from midnight UTC, with the default of 24) is given the section its first cycle was, so that a
# replay can ask the window's calls together, ahead of its cycles (docs/learning.md, "The prompt's cadence").
PROMPT_REFRESH_HOURS = env.int("TRADINGAI_PROMPT_REFRESH_HOURS", default=24)
# How many of a refresh window's analyst calls a replay asks at once (automation/replay_asks.py): a day of
# hourly slots, so that a window costs one call's wait. Lower it for an account with a low rate limit.
REPLAY_ASK_CONCURRENCY = env.int("TRADINGAI_REPLAY_ASK_CONCURRENCY", default=24)
# A run RUNNING for longer than this died with its worker: the analyst's and the chart's deadlines (4.5 min)
# plus what bounds the other steps (the exchange's timeouts, the order's PLACE_RETRY_WAITS, seconds of local
# work) come well within it (docs/operations.md, "Deadlines"). It is then marked failed
# (automation.recovery), or taken over by a redelivered task.
CYCLE_STALE_RUN_SECONDS = env.float("TRADINGAI_STALE_RUN_SECONDS", default=15 * 60.0)

# --- Celery ---------------------------------------------------------------------------------------
# Without CELERY_BROKER_URL, kombu's filesystem transport: a real broker in folders under var/, so the
# embedded default runs a real worker and beat with no server to install.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_BROKER_DIR = Path(env.str("CELERY_BROKER_DIR", default=str(VAR_DIR / "broker")))


def filesystem_broker_options(folder: Path) -> dict:
    # Producer and consumer share one folder: a message written by the web process is read by the worker.
    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


# Without socket timeouts, sending a task to a Redis that accepts connections but does not answer (hung,
# paused, a half-open connection after a failover) waits forever, and so does the web request that sent it
# (run-now). With them a dead broker fails the send within seconds (Celery's publish retries included),
# and run-now says so.
REDIS_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3, "socket_timeout": 5}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(CELERY_BROKER_DIR)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_TRANSPORT_OPTIONS
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# django-celery-beat's scheduler, which also records beat's own ticks (automation.beat).
CELERY_BEAT_SCHEDULER = "automation.beat:HeartbeatDatabaseScheduler"
# Cycles wait on the LLM, the exchange and the browser: they run on their own queue, in a worker with many
# threads; everything else stays on "default". Which cycles are due is kept with each bot (Bot.next_due), not
# in beat's schedule: the dispatcher, run by beat every minute, sends them (automation.dispatch).
CELERY_TASK_ROUTES = {
    "automation.tasks.run_cycle_task": {"queue": "io"},
    # Notifications wait on Slack, Discord, Telegram, a user's server or the mail server.
    "notifications.tasks.deliver_task": {"queue": "io"},
}
# Beat sends a heartbeat on each queue the product uses, and a worker of that queue records it: a queue whose
# heartbeat is older than HEARTBEAT_STALE_SECONDS has no worker taking its tasks, or beat is down
# (automation.health: /healthz and the dashboard).
HEARTBEAT_QUEUES = sorted({CELERY_TASK_DEFAULT_QUEUE, *(r["queue"] for r in CELERY_TASK_ROUTES.values())})
WORKER_HEARTBEAT_SECONDS = env.float("TRADINGAI_HEARTBEAT_SECONDS", default=60.0)
HEARTBEAT_STALE_SECONDS = 3 * WORKER_HEARTBEAT_SECONDS
# Entries here are copied into django-celery-beat's tables when beat starts; the admin shows them.
CELERY_BEAT_SCHEDULE = {
    # At the start of each minute, the bots' cycles due (a bot's cycle is due at a whole minute of its
    # period); beat runs it in its own process (automation.beat).
    "dispatch-cycles": {"task": "automation.tasks.dispatch_cycles_task", "schedule": crontab()},
    **{
        f"heartbeat-{queue}": {
            "task": "automation.tasks.heartbeat_task",
            "schedule": WORKER_HEARTBEAT_SECONDS,
            "args": (queue,),
            # expire_seconds, which django-celery-beat reads: a heartbeat a worker takes late proves nothing.
            "options": {"queue": queue, "expire_seconds": WORKER_HEARTBEAT_SECONDS},
        }
        for queue in HEARTBEAT_QUEUES
    },
    # Runs whose worker died (killed, out of memory, the machine gone) are marked failed at the step they
    # were in; automation.recovery says why the broker's redelivery is not relied on for this.
    "recover-lost-runs": {
        "task": "automation.tasks.recover_lost_runs_task",
        "schedule": env.float("TRADINGAI_RECOVER_SECONDS", default=300.0),
        "options": {"expires": 240},
    },
    "monitor-open-trades": {
        "task": "automation.tasks.monitor_trades_task",
        "schedule": env.float("TRADINGAI_MONITOR_SECONDS", default=300.0),
        "options": {"expires": 240},
    },
    # Hourly, so that a model that stopped beating the stated confidence stops gating trades within the
    # hour; it trains a new model only when ML_RETRAIN_HOURS have passed (a daily run would skip a day
    # whenever it started a little earlier than the model it should replace was stored).
    "retrain-outcome-models": {
        "task": "learning.tasks.retrain_models_task",
        "schedule": env.float("TRADINGAI_ML_CHECK_SECONDS", default=3600.0),
        "options": {"expires": 3000},
    },
    # Deliveries whose task never reached the broker (notifications.services.requeue_stuck).
    "requeue-stuck-deliveries": {
        "task": "notifications.tasks.requeue_stuck_deliveries_task",
        "schedule": 600.0,
        "options": {"expires": 540},
    },
    # Each user's weekly learning summary (notifications.summary), once per ISO week whatever beat does.
    "weekly-learning-summaries": {
        "task": "notifications.tasks.weekly_summaries_task",
        "schedule": crontab(minute=0, hour=8, day_of_week="mon"),
        "options": {"expires": 6 * 3600},
    },
}

# --- Notifications ----------------------------------------------------------------------------------
# Where Slack's and Discord's webhook URLs must point, and Telegram's Bot API: settings so that the tests
# point them at stand-ins on 127.0.0.1 (notifications.outbound).
SLACK_WEBHOOK_BASE = env.str("TRADINGAI_SLACK_WEBHOOK_BASE", default="https://hooks.slack.com/services/")
DISCORD_WEBHOOK_BASE = env.str("TRADINGAI_DISCORD_WEBHOOK_BASE", default="https://discord.com/api/webhooks/")
TELEGRAM_API_BASE = env.str("TRADINGAI_TELEGRAM_API_BASE", default="https://api.telegram.org")
# Hosts a generic webhook may name although they are on the operator's networks (and over plain HTTP): none
# in production, where such a URL is a request forgery; 127.0.0.1 in the tests. A link-local or reserved
# address is refused even for a host named here (core/outbound.py).
NOTIFICATIONS_LOCAL_HOSTS = env.list("TRADINGAI_NOTIFICATIONS_LOCAL_HOSTS", default=[])
# A delivery is tried at most this many times, after 30 s, 1, 2, 4 and 8 minutes (or the receiver's
# Retry-After), each wait at most NOTIFICATIONS_RETRY_MAX_SECONDS.
NOTIFICATIONS_MAX_ATTEMPTS = env.int("TRADINGAI_NOTIFICATIONS_MAX_ATTEMPTS", default=6)
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("TRADINGAI_NOTIFICATIONS_RETRY_BASE_SECONDS", default=30.0)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.float("TRADINGAI_NOTIFICATIONS_RETRY_MAX_SECONDS", default=3600.0)

# --- Metrics ----------------------------------------------------------------------------------------
# /metrics (tradingai.metrics) answers anyone only when METRICS_PUBLIC is on (the local default); otherwise
# the bearer token TRADINGAI_METRICS_TOKEN, or a staff member signed in with a second factor.
METRICS_PUBLIC = env.bool("TRADINGAI_METRICS_PUBLIC", default=False)
METRICS_TOKEN = env.str("TRADINGAI_METRICS_TOKEN", default="")

# --- Errors -----------------------------------------------------------------------------------------
# With SENTRY_DSN, Sentry receives every error logged (logger.exception, ERROR: a cycle's unexpected error)
# and every unhandled one in a request or a task, with its traceback; warnings go with them as breadcrumbs.
# Nothing is sent without it. No request body, cookie, address or local variable leaves: forms carry
# passwords and exchange keys, and the live broker's frames hold decrypted keys.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
if SENTRY_DSN:
    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=0.0,
    )

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# text: a line a person reads; json: one JSON object a line, for a log collector. Either way a line logged
# inside a cycle carries its user, bot, run and slot (core.log_context).
LOG_FORMAT = env.str("LOG_FORMAT", default="text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT is {LOG_FORMAT!r}: it must be text or json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.log_context.ContextFilter"}},
    "formatters": {
        "text": {
            "()": "core.log_context.TextFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # At DEBUG, ccxt logs each request with its headers, where exchanges take the API key (and passphrase),
    # and urllib3 each URL, where some take the key: never below INFO, whatever LOG_LEVEL says.
    "loggers": {
        **{name: {"level": "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL} for name in ("ccxt", "urllib3")},
        # axes says four things at INFO about every sign-in; its WARNINGs (each failure, each lockout) stay.
        "axes": {"level": "WARNING"},
    },
}

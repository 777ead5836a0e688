"""gunicorn's configuration for the production web process (deploy/Procfile, docs/operations.md).

Read from the environment: TRADINGAI_BIND (default 127.0.0.1:8000, for an HTTPS proxy on the same machine;
`0.0.0.0:8000` behind one on another, `unix:/run/tradingai/web.sock` for a socket), TRADINGAI_WEB_WORKERS
(default 2 x CPUs + 1, gunicorn's advice), TRADINGAI_WEB_TIMEOUT (30 s) and LOG_FORMAT (text or json, as the
product's logs). The access log goes to standard output, one line a request, in that format."""

import logging
import multiprocessing
import os

bind = [os.environ.get("TRADINGAI_BIND", "127.0.0.1:8000")]
workers = int(os.environ.get("TRADINGAI_WEB_WORKERS", 2 * multiprocessing.cpu_count() + 1))
# Sync workers: each request holds its worker, and the slowest ones (run-now's send to the broker, a
# report's plots) finish in seconds. A worker stuck past the timeout is killed and replaced.
timeout = int(os.environ.get("TRADINGAI_WEB_TIMEOUT", 30))
graceful_timeout = 30  # a stop or a reload lets requests in flight finish this long
keepalive = 5  # the proxy in front reuses its connections
# A worker is replaced after this many requests (jittered so they do not all restart at once): what a long
# life leaks is given back.
max_requests = 2000
max_requests_jitter = 200
# gunicorn's control socket (gunicornc) is one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn): a second
# gunicorn of the same user, an upgrade's or a test's, would take it over. Signals do its work (HUP reloads).
control_socket_disable = True
# The proxy sets X-Forwarded-Proto; Django reads it (SECURE_PROXY_SSL_HEADER) from any address, gunicorn's
# own use of it (wsgi.url_scheme) only from these.
forwarded_allow_ips = os.environ.get("TRADINGAI_FORWARDED_ALLOW_IPS", "127.0.0.1")

# Both logs through logconfig_dict below only: gunicorn's own handlers (accesslog, errorlog) would write
# each line a second time, in its format.
accesslog = None
errorlog = None
access_log_format = '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s"'
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").lower()


class AccessFields(logging.Filter):
    """Puts each access line's request, status and duration in fields of their own (JSON keys), from the
    values gunicorn formats its message with."""

    def filter(self, record):
        if isinstance(record.args, dict):
            atoms = record.args
            record.method, record.path, record.status = atoms.get("m"), atoms.get("U"), atoms.get("s")
            record.bytes, record.duration_ms, record.remote = atoms.get("B"), atoms.get("M"), atoms.get("h")
        return True


# As settings.LOGGING formats the product's lines (text, or JSON with the same keys), so that one collector
# reads both. gunicorn's own loggers do not propagate: Django's configuration, applied in each worker, puts
# its handler on the root logger, and the lines would be written twice.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"access_fields": {"()": AccessFields}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "access": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["access_fields"] if LOG_FORMAT == "json" else [],
            "stream": "ext://sys.stdout",
        },
        "error": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "stream": "ext://sys.stderr"},
    },
    "root": {"level": "INFO", "handlers": ["error"]},
    "loggers": {
        "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        "gunicorn.error": {"level": "INFO", "handlers": ["error"], "propagate": False},
    },
}

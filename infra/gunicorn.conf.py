"""gunicorn settings of the HTTP side: `gunicorn -c infra/gunicorn.conf.py veza.wsgi`.

HTTP goes to gunicorn (WSGI: Django's sync middleware runs without a thread
hop per middleware), websockets to daphne; nginx splits them by path and
buffers request and response bodies, so slow clients never hold a worker.
That is why plain `sync` workers are the default: one request per process,
no GIL sharing, and nginx absorbs slow uploads. One worker per core.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count()))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Uploads arrive at nginx speed (it buffers them), but a 512 MB one is still
# received, hashed, probed and stored inside one request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Off by default: set it (e.g. 10000) to recycle workers if a leak shows up.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# Behind nginx on the same host: trust its X-Forwarded-* headers.
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
# Access lines with signed URLs' tokens redacted (veza/log_redaction.py).
logger_class = "veza.log_redaction.RedactingGunicornLogger"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

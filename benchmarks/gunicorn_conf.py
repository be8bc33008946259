"""Gunicorn settings shared by the three benchmarked servers.

Baselines: ``gunicorn -c benchmarks/gunicorn_conf.py``; trackline: run.py writes ``SHARED`` into the
``gunicorn.yaml`` of a copy of ./conf. Values follow conf/gunicorn.yaml, except ``max_requests`` (0: no
worker restarts in the middle of a measurement) and the control socket (off).
"""

import os

SHARED = {
    "workers": 2,
    "worker_class": "gevent",
    "worker_connections": 1000,
    "keepalive": 5,
    "timeout": 30,
    "graceful_timeout": 5,
    "max_requests": 0,
    "preload_app": False,
    "control_socket_disable": True,
}
globals().update(SHARED)  # gunicorn reads settings from this module's globals

bind = os.environ.get("BENCH_BIND", "127.0.0.1:8000")

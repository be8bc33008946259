# trackline's demo API in a container, every log line (app, access, error) as JSON on stdout (docs/containers.md).
#   docker build -t trackline .            (podman build -t trackline . works the same)
#   docker run --rm -p 8000:8000 trackline
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/trackline
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --system --no-create-home --home-dir /nonexistent trackline
COPY conf ./conf

# TRACKLINE_LOG_TO=stdout reads conf/logging.stdout.yaml: every line on stdout, nothing in files.
# Listen on every interface of the container (publish it with -p); pid file and gunicorn's control socket in /tmp.
ENV TRACKLINE_CONF_DIR=/opt/trackline/conf \
    TRACKLINE_LOG_TO=stdout \
    TRACKLINE_BIND=0.0.0.0:8000 \
    TRACKLINE_RUN_DIR=/tmp/trackline

USER trackline
EXPOSE 8000
# Your own app: add `pip install` of it above and `--app 'pkg:create_app()'` here (docs/your-app.md).
# exec form: trackline's master is PID 1 and gets `docker stop`'s TERM (graceful, within graceful_timeout).
CMD ["trackline", "serve"]
STOPSIGNAL SIGTERM

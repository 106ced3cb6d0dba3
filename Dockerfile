# Athenaeum service image: `docker build -t athenaeum .` then see docs/DOCKER_SETUP.md.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LOG_FORMAT=json \
    HEALTH_PORT=8080 \
    ATHENAEUM_DATA_DIR=/app/.athenaeum

WORKDIR /app

# A non-root user owns the process (and the data directory of the embedded database, if one is used).
RUN groupadd --system --gid 10001 athenaeum \
    && useradd --system --uid 10001 --gid athenaeum --home-dir /app --shell /usr/sbin/nologin athenaeum

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

# Then the code (changes often; cheap layer).
COPY --chown=athenaeum:athenaeum . .
RUN mkdir -p /app/.athenaeum && chown athenaeum:athenaeum /app/.athenaeum

USER 10001:10001
EXPOSE 8080

# Liveness only (the process answers); Kubernetes uses /readyz for readiness. No curl in slim: use Python.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('HEALTH_PORT', '8080'), timeout=4)"]

# SIGTERM (docker stop, Kubernetes) drains in-flight events within STOP_GRACE_PERIOD, then exits 0.
STOPSIGNAL SIGTERM
CMD ["python", "athenaeum.py", "run"]

# The distill worker image: `docker build -t distill-streams:0.1.0 .`
# Runs `distill worker` by default; any other subcommand works too, e.g.
# `docker run --rm distill-streams:0.1.0 stats`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Install the package from a throw-away copy of the sources (only what the build needs,
# so a local .venv or data folder never ends up in the image).
WORKDIR /tmp/distill-src
COPY pyproject.toml ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip install . \
    && cd / \
    && rm -rf /tmp/distill-src

# Non-root user with a fixed uid/gid, so Kubernetes can check runAsNonRoot and set fsGroup.
RUN groupadd --system --gid 10001 distill \
    && useradd --system --uid 10001 --gid distill --home-dir /var/lib/distill \
       --no-create-home --shell /usr/sbin/nologin distill \
    && mkdir -p /var/lib/distill \
    && chown distill:distill /var/lib/distill

# The RocksDB table state lives in DISTILL_DATA_DIR; mount a volume there to keep it
# across restarts (it can always be rebuilt from the changelog topics).
ENV DISTILL_DATA_DIR=/var/lib/distill \
    DISTILL_WEB_HOST=0.0.0.0 \
    DISTILL_WEB_PORT=6066

WORKDIR /var/lib/distill
USER 10001:10001

# Faust web server: `/` (up), `/health` (503 once the worker stalls) and `/metrics` (Prometheus).
EXPOSE 6066

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=4 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('DISTILL_WEB_PORT', '6066'), timeout=4)"

ENTRYPOINT ["distill"]
CMD ["worker"]

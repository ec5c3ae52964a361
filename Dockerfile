# mesbridge: the service image. Mount a config root at /config; state defaults to /data/mesbridge.db.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MESBRIDGE_HOST=0.0.0.0 \
    MESBRIDGE_PORT=8600 \
    MESBRIDGE_STORE=sqlite:////data/mesbridge.db

WORKDIR /app
COPY pyproject.toml README.md* ./
COPY engine ./engine
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /data --create-home mesbridge \
    && mkdir -p /config \
    && chown mesbridge /data

USER mesbridge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8600
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8600/healthz', timeout=2)"
# SIGTERM drains: the server stops accepting, in-flight work finishes (shutdown_grace), the queue is kept.
STOPSIGNAL SIGTERM
CMD ["mesbridge", "run", "/config"]

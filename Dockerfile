# syntax=docker/dockerfile:1

# ticketbridge container image.
#
#   docker build -t ticketbridge .
#   docker run -d -p 8080:8080 \
#     -v "$PWD/config:/etc/ticketbridge:ro" \
#     -v ticketbridge-data:/var/lib/ticketbridge \
#     ticketbridge
#
# Configuration: mount a directory holding ticketbridge.yaml read-only at
# /etc/ticketbridge/.  Nothing secret is baked into the image: credentials come
# from mounted secret files (e.g. /run/secrets/...) referenced by the config or
# by *_FILE environment variables; see docker-compose.example.yml.
#
# State: the default SQLite store lives in the /var/lib/ticketbridge volume
# (owned by uid/gid 10001; a bind mount there must be writable by that uid).
# The server must listen on 0.0.0.0 inside the container (server.host).

# ---------------------------------------------------------------- build stage
FROM python:3.12-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv

WORKDIR /src
# Only what the wheel build (hatchling) needs: metadata, the readme and licence it
# references, the code.
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN /opt/venv/bin/pip install --no-cache-dir .

# ---------------------------------------------------------------- runtime stage
FROM python:3.12-slim-bookworm

LABEL org.opencontainers.image.title="ticketbridge" \
      org.opencontainers.image.description="Bridges MSP PSA tickets to third-party vendor tickets" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1 \
    TICKETBRIDGE_STORE__URL=sqlite:////var/lib/ticketbridge/ticketbridge.db

RUN groupadd --system --gid 10001 ticketbridge \
    && useradd --system --uid 10001 --gid ticketbridge --no-create-home \
        --home-dir /var/lib/ticketbridge --shell /usr/sbin/nologin ticketbridge \
    && install -d -o ticketbridge -g ticketbridge -m 0750 /var/lib/ticketbridge \
    && install -d -m 0755 /etc/ticketbridge

COPY --from=builder /opt/venv /opt/venv

USER 10001:10001
WORKDIR /var/lib/ticketbridge
VOLUME ["/var/lib/ticketbridge"]
EXPOSE 8080

# slim has no curl: ask /healthz with the standard library.  Any error or non-2xx
# answer raises, and python exits 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('TICKETBRIDGE_HEALTHCHECK_URL', 'http://127.0.0.1:8080/healthz'), timeout=4)"]

ENTRYPOINT ["ticketbridge"]
CMD ["run", "--config", "/etc/ticketbridge/ticketbridge.yaml"]

# syntax=docker/dockerfile:1
# The commsgw image: `docker run IMAGE` serves the gateway (`commsgw serve`), `docker run IMAGE dev`
# runs the Graph emulator and the gateway on it, `docker run IMAGE emulator ...` the emulator alone.
# Build: `make image` (docker build -t commsgw:dev .). Settings: COMMSGW_*/AZURE_* variables.

ARG PYTHON_IMAGE=python:3.11-slim-trixie

# ---------------------------------------------------------------- builder: wheels only
FROM ${PYTHON_IMAGE} AS builder
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Every dependency is pinned in pyproject.toml and ships binary wheels for CPython 3.11 on
# manylinux (x86_64 and aarch64), so no compiler is needed here either.
COPY clients/python/ clients/python/
COPY pyproject.toml README.md ./
COPY service/ service/
# One resolution: the local commsgw-client satisfies commsgw's pin of it.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients/python .

# ---------------------------------------------------------------- final: Python and the wheels
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="commsgw" \
      org.opencontainers.image.description="gRPC gateway in front of Microsoft Graph cloud communications (calls)"

RUN groupadd --system --gid 10001 commsgw \
    && useradd --system --uid 10001 --gid commsgw --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin commsgw \
    && install -d -o commsgw -g commsgw -m 0750 /state

# Installed from the builder's wheels only (--no-index): nothing is fetched or compiled here.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/commsgw \
    && /opt/commsgw/bin/pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl \
    && /opt/commsgw/bin/pip uninstall --yes pip
COPY --chmod=0644 deploy/docker/healthcheck.py /opt/commsgw/healthcheck.py

# Listen on every interface of the container. COMMSGW_ALLOW_INSECURE_BIND=true: TLS is
# terminated in front (a TLS-terminating proxy or load balancer, an ingress, a service mesh);
# set COMMSGW_GRPC_TLS_*/COMMSGW_HTTP_TLS_* to serve TLS from the container instead.
# /state holds the emulator's CA and certificates (`dev`, `emulator`); `serve` writes nothing.
ENV PATH=/opt/commsgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMMSGW_GRPC_ADDR=0.0.0.0:50051 \
    COMMSGW_HTTP_ADDR=0.0.0.0:8080 \
    COMMSGW_STATE_DIR=/state \
    COMMSGW_ALLOW_INSECURE_BIND=true

USER 10001:10001
WORKDIR /state
# gRPC, HTTP (Graph's callback webhook /api/calls, /healthz, /readyz, /metrics)
EXPOSE 50051/tcp 8080/tcp

# Liveness of the gateway (`serve`, `dev`); the emulator alone (`emulator`) has no /healthz.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/commsgw/bin/python", "/opt/commsgw/healthcheck.py"]

# SIGTERM drains: readiness NOT_SERVING, watches end, the webhook keeps accepting
# COMMSGW_WEBHOOK_DRAIN_S, exit within COMMSGW_SHUTDOWN_GRACE_S (10 s): give `docker stop` more
# (--stop-timeout / stop_grace_period), as Docker's own default is also 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["commsgw"]
CMD ["serve"]

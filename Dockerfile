# syntax=docker/dockerfile:1
# Two images from one build: the gateway (the last stage, `gateway`, what a plain `docker build`
# makes) and the local Graph emulator (`--target emulator`), its own distribution
# (commsgw-emulator), which the gateway's image does not contain.
#   gateway:  `docker run IMAGE` serves the gateway (`commsgw serve`). Build: `make image`
#             (docker build --target gateway -t commsgw:dev .)
#   emulator: `docker run EMULATOR_IMAGE` runs the emulator on 0.0.0.0:8443, its CA in /state
#             (a volume the gateways it serves mount: compose.yaml). Build: `make image-emulator`
#             (docker build --target emulator -t commsgw-emulator:dev .)
# Settings: COMMSGW_*/AZURE_* variables.

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
# One resolution: the local commsgw-client satisfies commsgw's pin of it. The emulator's wheel
# (its dependencies are the gateway's) goes to a folder of its own, which only `emulator` uses.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ./clients/python . \
    && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels/emulator ./service/emulator

# ---------------------------------------------------------------- emulator: the Graph emulator
# For development and tests only: the gateway and the emulator's wheels, run as a non-root user.
FROM ${PYTHON_IMAGE} AS emulator
LABEL org.opencontainers.image.title="commsgw-emulator" \
      org.opencontainers.image.description="Local emulator of Microsoft Graph's calls API for commsgw and bot tests (not for production)"

RUN groupadd --system --gid 10001 commsgw \
    && useradd --system --uid 10001 --gid commsgw --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin commsgw \
    && install -d -o commsgw -g commsgw -m 0750 /state

RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/commsgw \
    && /opt/commsgw/bin/pip install --no-cache-dir --no-index --find-links=/wheels \
       /wheels/*.whl /wheels/emulator/*.whl \
    && /opt/commsgw/bin/pip uninstall --yes pip
COPY --chmod=0644 deploy/docker/emulator_healthcheck.py /opt/commsgw/emulator_healthcheck.py

# COMMSGW_EMULATOR_URL: where the emulator is reached inside the container (its healthcheck:
# give another port to both it and --port); /state holds its CA (emulator-ca.pem).
ENV PATH=/opt/commsgw/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    COMMSGW_EMULATOR_URL=https://127.0.0.1:8443 \
    COMMSGW_STATE_DIR=/state

USER 10001:10001
WORKDIR /state
EXPOSE 8443/tcp
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/opt/commsgw/bin/python", "/opt/commsgw/emulator_healthcheck.py"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["commsgw-emulator"]
CMD ["--host", "0.0.0.0", "--port", "8443", "--state-dir", "/state"]

# ---------------------------------------------------------------- gateway: Python and the wheels
# The production image (the last stage: the default target): no emulator code in it.
FROM ${PYTHON_IMAGE} AS gateway
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
# /state: where a gateway in emulator mode looks for the emulator's CA; `serve` writes nothing.
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

# Liveness of the gateway (GET /healthz).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/opt/commsgw/bin/python", "/opt/commsgw/healthcheck.py"]

# SIGTERM drains: readiness NOT_SERVING, watches end, the webhook keeps accepting
# COMMSGW_WEBHOOK_DRAIN_S, exit within COMMSGW_SHUTDOWN_GRACE_S (10 s): give `docker stop` more
# (--stop-timeout / stop_grace_period), as Docker's own default is also 10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["commsgw"]
CMD ["serve"]

# syntax=docker/dockerfile:1
# The dualcap operator image: `docker build -t dualcap:dev .`
# Build stage: the wheel of dualcap and of everything it needs.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip install --no-cache-dir --upgrade pip build \
 && python -m build --wheel --outdir /dist . \
 && python -m pip wheel --no-cache-dir --wheel-dir /dist /dist/dualcap-*.whl

# Final stage: a slim Python with the wheels installed, no build tools, no source tree.
FROM python:3.11-slim
LABEL org.opencontainers.image.title="dualcap" \
      org.opencontainers.image.description="Keeps mining-turned-AI-compute sites inside their power envelope" \
      org.opencontainers.image.source="https://github.com/dualcap/dualcap" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/dist,target=/dist \
    python -m pip install --no-cache-dir --no-index --find-links /dist dualcap \
 && python -m pip uninstall -y pip setuptools wheel \
 && groupadd --gid 10001 dualcap \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin dualcap
USER 10001:10001
# 8080: kopf's liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["dualcap"]
CMD ["run", "--log-format=json"]

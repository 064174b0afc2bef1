# syntax=docker/dockerfile:1
# A Qdrant server image for the test cluster, on the same base as the PhoenixTwin images.
# No registry serves a Qdrant server here, so `make images` packs the binary QDRANT_BIN
# (default ../shared/bin/qdrant) into this context. Configure it with QDRANT__* variables.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG BASE_NAME=docker.io/library/python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="phoenix-qdrant" \
      org.opencontainers.image.description="Qdrant vector database server (Apache-2.0) for PhoenixTwin's test clusters." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${BASE_NAME}"
RUN groupadd --system --gid 10001 qdrant \
 && useradd --system --uid 10001 --gid 10001 --home-dir /qdrant --create-home \
      --shell /usr/sbin/nologin qdrant
COPY qdrant /usr/local/bin/qdrant
ENV QDRANT__STORAGE__STORAGE_PATH=/qdrant/storage \
    QDRANT__STORAGE__SNAPSHOTS_PATH=/qdrant/snapshots \
    QDRANT__TELEMETRY_DISABLED=true
WORKDIR /qdrant
USER 10001:10001
EXPOSE 6333 6334
ENTRYPOINT ["/usr/local/bin/qdrant"]

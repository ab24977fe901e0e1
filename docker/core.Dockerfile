# odin-core: the DAG engine served over WebSocket (`odin-core serve`, port 30000).
# Built from the repository root: `make images`, or
#   docker build -f docker/core.Dockerfile -t odin-core .
# BASE is any Debian-based image with python3 (>= 3.11) and its venv module; the default is the public slim one.
ARG BASE=docker.io/library/python:3.12-slim-bookworm

FROM ${BASE} AS build
# Only set where TLS is verified with a CA bundle of the build machine's own (mounted, never copied in).
ARG PIP_CERT
RUN python3 -m venv /opt/odin
COPY docker/requirements/core.txt /src/requirements.txt
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/requirements.txt
COPY odin-core /src/odin-core
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src/odin-core \
 && /opt/odin/bin/pip uninstall --yes --quiet pip setuptools wheel

FROM ${BASE}
# git: the core records the commit a job runs from; tini: PID 1 that forwards signals and reaps the processes of
# local-executor tasks. Package versions are those of the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git tini \
 && rm -rf /var/lib/apt/lists/* \
 && echo 'odin:x:10001:10001:Odin:/var/lib/odin:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'odin:x:10001:' >> /etc/group \
 && mkdir -p /var/lib/odin /srv/pipelines \
 && chown 10001:10001 /var/lib/odin /srv/pipelines
COPY --from=build /opt/odin /opt/odin
COPY docker/healthcheck.py /usr/local/bin/odin-healthcheck
COPY docker/wait_for.py /usr/local/bin/odin-wait-for
ENV PATH=/opt/odin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ODIN_HOME=/var/lib/odin \
    ODIN_HEALTHCHECK_URL=ws://127.0.0.1:30000
USER 10001:10001
WORKDIR /var/lib/odin
EXPOSE 30000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["odin-healthcheck"]
ENTRYPOINT ["tini", "--", "odin-core"]
# Off loopback the core refuses to start without a secret: add --jwt-secret-file (the gateway's key) or --token-file.
CMD ["serve", "--host", "0.0.0.0", "--root-path", "/srv/pipelines"]
# Labels last: they change with every commit, and nothing after them is rebuilt for it.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="odin-core" \
      org.opencontainers.image.description="Odin's core: the DAG engine, executors and job stores, served over WebSocket" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

# odin-http: the HTTP gateway (`odin-http serve`, port 9003): users, tokens, git-backed pipelines, the REST API.
# Built from the repository root: `make images`, or
#   docker build -f docker/gateway.Dockerfile -t odin-http .
# BASE is any Debian-based image with python3 (>= 3.11) and its venv module; the default is the public slim one.
ARG BASE=docker.io/library/python:3.12-slim-bookworm

FROM ${BASE} AS build
# Only set where TLS is verified with a CA bundle of the build machine's own (mounted, never copied in).
ARG PIP_CERT
RUN python3 -m venv /opt/odin
COPY docker/requirements/gateway.txt /src/requirements.txt
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/requirements.txt
COPY odin-core /src/odin-core
COPY odin-client /src/odin-client
COPY odin-http /src/odin-http
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
      /src/odin-core /src/odin-client /src/odin-http \
 && /opt/odin/bin/pip uninstall --yes --quiet pip setuptools wheel

FROM ${BASE}
# tini: PID 1 that forwards signals. Package versions are those of the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && echo 'odin:x:10001:10001:Odin:/var/lib/odin:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'odin:x:10001:' >> /etc/group \
 && mkdir -p /var/lib/odin /srv/pipelines \
 && chown 10001:10001 /var/lib/odin /srv/pipelines
COPY --from=build /opt/odin /opt/odin
COPY docker/healthcheck.py /usr/local/bin/odin-healthcheck
COPY docker/wait_for.py /usr/local/bin/odin-wait-for
# The pipelines root is the volume shared with the core (the core's --root-path).
ENV PATH=/opt/odin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ODIN_HTTP_SERVER_HOST=0.0.0.0 \
    ODIN_HTTP_GIT_ROOT=/srv/pipelines \
    ODIN_HEALTHCHECK_URL=http://127.0.0.1:9003/v1/health
USER 10001:10001
WORKDIR /var/lib/odin
EXPOSE 9003
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["odin-healthcheck"]
ENTRYPOINT ["tini", "--", "odin-http"]
CMD ["serve"]
# Labels last: they change with every commit, and nothing after them is rebuilt for it.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="odin-http" \
      org.opencontainers.image.description="Odin's HTTP gateway: users and tokens, git-backed pipelines, the REST API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

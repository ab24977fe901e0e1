# midgard: the node agent (one per GPU node, port 29999): NVML and system readings, pushed to the gateway.
# Built from the repository root: `make images`, or
#   docker build -f docker/midgard.Dockerfile -t midgard .
# No CUDA in here: NVML (libnvidia-ml.so.1) comes from the host's driver at run time, mounted by the NVIDIA
# container runtime (runtimeClassName: nvidia, NVIDIA_VISIBLE_DEVICES=all); without it the agent reports zero
# GPUs and the reason. BASE is any Debian-based image with python3 (>= 3.11) and its venv module.
ARG BASE=docker.io/library/python:3.12-slim-bookworm

FROM ${BASE} AS build
# Only set where TLS is verified with a CA bundle of the build machine's own (mounted, never copied in).
ARG PIP_CERT
RUN python3 -m venv /opt/odin
COPY docker/requirements/midgard.txt /src/requirements.txt
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check -r /src/requirements.txt
COPY odin-core /src/odin-core
COPY midgard /src/midgard
RUN /opt/odin/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps /src/odin-core /src/midgard \
 && /opt/odin/bin/pip uninstall --yes --quiet pip setuptools wheel

FROM ${BASE}
# tini: PID 1 that forwards signals. Package versions are those of the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/* \
 && echo 'midgard:x:10002:10002:Odin node agent:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'midgard:x:10002:' >> /etc/group
COPY --from=build /opt/odin /opt/odin
COPY docker/healthcheck.py /usr/local/bin/odin-healthcheck
# What the NVIDIA container runtime reads: every GPU, watched without being reserved; NVML only (utility).
ENV PATH=/opt/odin/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility \
    ODIN_HEALTHCHECK_URL=http://127.0.0.1:29999/healthz
USER 10002:10002
EXPOSE 29999
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["odin-healthcheck"]
ENTRYPOINT ["tini", "--", "midgard"]
# Labels last: they change with every commit, and nothing after them is rebuilt for it.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="midgard" \
      org.opencontainers.image.description="Odin's node agent: every GPU (NVML, from the host driver) and the node" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0"

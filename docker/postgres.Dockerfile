# odin-postgres: PostgreSQL 15 from Debian's packages, for machines that cannot pull the official image (the
# project's test machines have no registry). It takes the official image's settings (POSTGRES_USER, POSTGRES_DB,
# POSTGRES_PASSWORD_FILE, PGDATA; data in /var/lib/postgresql/data), so docker-compose.yml and k8s/ name the
# official `postgres:15` by default and tests swap this one in. BASE must be Debian bookworm (postgresql-15).
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE}
# The user is made first with the official image's ids (999), so volumes move between the two images; Debian
# creates the cluster it ships with, this image makes its own at first start, in the volume.
# hadolint ignore=DL3008
RUN echo 'postgres:x:999:999:PostgreSQL:/var/lib/postgresql:/bin/sh' >> /etc/passwd \
 && echo 'postgres:x:999:' >> /etc/group \
 && mkdir -p /var/lib/postgresql && chown 999:999 /var/lib/postgresql \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 tini \
 && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 /etc/postgresql/15/main \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 0700 /var/lib/postgresql/data
COPY docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
USER 999:999
EXPOSE 5432
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
  CMD ["sh", "-c", "pg_isready -q -h 127.0.0.1 -U \"${POSTGRES_USER:-postgres}\""]
STOPSIGNAL SIGINT
ENTRYPOINT ["tini", "--", "postgres-entrypoint"]
# Labels last: they change with every commit, and nothing after them is rebuilt for it.
ARG VERSION=15
ARG REVISION=unknown
ARG SOURCE=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="odin-postgres" \
      org.opencontainers.image.description="PostgreSQL 15 (Debian) with the official image's environment variables" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="PostgreSQL"

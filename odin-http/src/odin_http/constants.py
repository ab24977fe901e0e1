"""Every magic string of the gateway in one place: paths, claims, headers, table names, defaults."""

from __future__ import annotations

PREFIX = "/v1"
DEFAULT_PORT = 9003
ENV_PREFIX = "ODIN_HTTP_"
ENV_CONFIG_FILE = "ODIN_HTTP_CONFIG"

# Token claims and types.
TOKEN_ACCESS = "access"
TOKEN_REFRESH = "refresh"
CLAIM_TYPE = "typ"
CLAIM_ROLE = "role"
CLAIM_VERSION = "ver"  # the user's token version: a password change bumps it and so revokes every token

# Roles.
ROLE_ADMIN = "admin"
ROLE_USER = "user"
ROLES = (ROLE_ADMIN, ROLE_USER)

# Pipelines root layout (the core's --root-path, shared with the gateway).
STATE_DIR = ".odin"  # under the pipelines root: the repository and the snapshots the core runs
REPO_DIR = "repo.git"
COMMITS_DIR = "commits"
SSH_HOME_DIR = "ssh-home"  # the home libgit2 is given: its .ssh/known_hosts is git.ssh_known_hosts_file's copy
TEMPLATE_SUFFIX = ".jinja2"
MAIN_FILE = "main.yml"
WRITE_LOCK_FILE = "odin-write.lock"

# HTTP.
SSE_CONTENT_TYPE = "text/event-stream"
HEADER_LAST_EVENT_ID = "Last-Event-ID"
HEADER_RETRY_AFTER = "Retry-After"
HEADER_REQUEST_ID = "X-Request-Id"

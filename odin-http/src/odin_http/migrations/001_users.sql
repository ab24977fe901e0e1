-- Users, revoked tokens, failed logins and the gateway's record of the runs it started.
CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    firstname     text NOT NULL DEFAULT '',
    lastname      text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('admin', 'user')),
    password_hash text NOT NULL,
    token_version integer NOT NULL DEFAULT 1,
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE revoked_tokens (
    jti     text PRIMARY KEY,
    expires timestamptz NOT NULL
);
CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires);

CREATE TABLE login_failures (
    key          text PRIMARY KEY,
    failures     integer NOT NULL,
    last_failure timestamptz NOT NULL
);

CREATE TABLE gateway_runs (
    run_id   text PRIMARY KEY,
    job      text NOT NULL,
    commit   text NOT NULL,
    username text NOT NULL,
    context  jsonb NOT NULL DEFAULT '{}',
    created  timestamptz NOT NULL DEFAULT now()
);

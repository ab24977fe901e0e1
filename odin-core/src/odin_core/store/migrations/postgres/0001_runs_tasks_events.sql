-- Odin's job store on PostgreSQL, schema version 1.
-- Runs, their tasks and their events; free-form records as jsonb beside the columns that are queried.

CREATE TABLE runs (
    run_id    text PRIMARY KEY,
    job       text NOT NULL,
    name      text NOT NULL DEFAULT '',
    status    text NOT NULL,
    submitted double precision NOT NULL,
    completed double precision,
    record    jsonb NOT NULL,
    spec      jsonb NOT NULL,
    -- the lease: who drives the run, at which epoch, and when it last proved it
    owner     text NOT NULL DEFAULT '',
    epoch     bigint NOT NULL DEFAULT 1,
    heartbeat double precision NOT NULL DEFAULT 0,
    -- NULL, or why a stop was requested: written by other processes, never by the engine's commits
    stop      text
);

-- listing, newest first, all or by status or by job; pattern look-ups by prefix of id, job or name
CREATE INDEX runs_submitted ON runs (submitted DESC, run_id);
CREATE INDEX runs_status ON runs (status, submitted DESC);
CREATE INDEX runs_job ON runs (job, submitted DESC);
CREATE INDEX runs_run_id_prefix ON runs (run_id text_pattern_ops);
CREATE INDEX runs_job_prefix ON runs (job text_pattern_ops);
CREATE INDEX runs_name_prefix ON runs (name text_pattern_ops);
-- the lease queries touch active runs only: heartbeat by owner, takeover of stale ones
CREATE INDEX runs_active_owner ON runs (owner) WHERE status IN ('BUILDING', 'RUNNING');
CREATE INDEX runs_active_heartbeat ON runs (heartbeat) WHERE status IN ('BUILDING', 'RUNNING');
-- retention: ended runs by end time
CREATE INDEX runs_ended ON runs (completed) WHERE status IN ('DONE', 'TERMINATED');

CREATE TABLE tasks (
    run_id text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name   text NOT NULL,
    ord    integer NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE UNIQUE INDEX tasks_order ON tasks (run_id, ord);

CREATE TABLE events (
    run_id text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq    bigint NOT NULL,
    record jsonb NOT NULL,
    PRIMARY KEY (run_id, seq)
);

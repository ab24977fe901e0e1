"""Every magic string of Odin in one place: labels, environment names, file names, defaults."""

from __future__ import annotations

# Label / annotation keys that tie Kubernetes objects to a run and a task.
LABEL_PREFIX = "odin.ml"
LABEL_RUN = f"{LABEL_PREFIX}/run"
LABEL_TASK = f"{LABEL_PREFIX}/task"
LABEL_ATTEMPT = f"{LABEL_PREFIX}/attempt"
LABEL_LONG_RUNNING = f"{LABEL_PREFIX}/long-running"

# Environment given to every task.
ENV_TASK_ID = "ODIN_TASK_ID"
ENV_TASK_NAME = "ODIN_TASK_NAME"
ENV_PIPE_ID = "ODIN_PIPE_ID"
ENV_ATTEMPT = "ODIN_ATTEMPT"
ENV_OUTPUTS = "ODIN_OUTPUTS"
ENV_TASK_PATH = "ODIN_TASK_PATH"
ENV_RUN_PATH = "ODIN_RUN_PATH"
ENV_WORK_PATH = "ODIN_WORK_PATH"

# Settings read from the environment (only by settings.py).
ENV_HOME = "ODIN_HOME"
DEFAULT_HOME = "~/.odin"

# Pipeline files.
MAIN_FILE = "main.yml"
DEFAULT_PIPELINE_NAME = "flow"

# Task outputs: where a task writes its JSON object. On Kubernetes the container
# termination message carries it, so no shared volume is needed.
K8S_OUTPUTS_PATH = "/dev/termination-log"
LOCAL_OUTPUTS_FILE = "outputs.json"
MAX_OUTPUTS_BYTES = 4096  # the kubelet's termination message limit

# Local run layout under the run directory.
RUN_META_DIR = ".odin"
LOCAL_ATTEMPTS_DIR = "attempts"  # <run>/.odin/attempts/<task>.<attempt>/: one local attempt's records
LOCAL_CLAIM_FILE = "supervisor.json"  # created exclusively: the attempt is claimed; names its supervisor
LOCAL_TASK_FILE = "task.json"  # the task process, written once it started
LOCAL_RESULT_FILE = "result.json"  # exit code, end time and outputs, written when it ended

# Node agents (midgard) and the gateway that aggregates their reports.
MIDGARD_PORT = 29999  # each agent's own HTTP port: GET /v1/gpus, /metrics
NODE_REPORTS_PATH = "/v1/nodes/reports"  # where agents POST their reports on the gateway
NODE_REPORT_VERSION = 1  # the "version" of a node report; the gateway refuses versions it does not know

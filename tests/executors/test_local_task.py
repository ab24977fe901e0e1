"""What a local task sees: its environment (never the core's secrets), its working directory, its logs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from pathlib import Path

import pytest
from odin_core.errors import PermanentError
from odin_core.executors.local import count_gpus
from odin_core.model import TaskStatus
from odin_core.settings import LocalSettings, Settings

from .conftest import PY, Gate, make_launch, record, task_code

DUMP_ENV = "import json, os; json.dump(dict(os.environ), open(os.environ['ODIN_TASK_PATH'] + '/env.json', 'w'))"
SECRETS = {
    "ODIN_TOKEN": "core-token",
    "ODIN_JWT_SECRET": "jwt-secret",
    "ODIN_STORE": "postgresql://odin:pw@db/odin",
    "AWS_SECRET_ACCESS_KEY": "aws-secret",
}


def task_env(launch) -> dict[str, str]:
    return json.loads((Path(launch.run_path) / launch.task.name / "env.json").read_text())


async def test_a_task_never_sees_the_secrets_of_the_core_that_started_it(
    data: Path, counter: Path, start_core, make_executor
):
    la = make_launch(data, "e1", "env", DUMP_ENV, env={"LOG_LEVEL": "debug"})
    core_env = {**os.environ, **SECRETS, "LANG": "C.UTF-8", "TZ": "Europe/Oslo"}
    core = await start_core([la], env=core_env)  # a server with its token and secret in its environment
    await core.read_until(lambda d: (d.get("update") or {}).get("status") == "SUCCEEDED")
    env = task_env(la)
    assert not set(SECRETS) & set(env), "the core's secrets reached a task"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(PY).parent)  # `python` is Odin's interpreter
    assert (env["LANG"], env["TZ"], env["HOME"]) == ("C.UTF-8", "Europe/Oslo", os.environ["HOME"])
    assert env["LOG_LEVEL"] == "debug" and env["ODIN_TASK_ID"] == "e1--env" and env["ODIN_OUTPUTS"]
    documented = {"PATH", "HOME", "LANG", "TZ", "LC_CTYPE", "LOG_LEVEL", *la.env, "ODIN_OUTPUTS"}
    assert set(env) <= documented | {k for k in os.environ if k in LocalSettings().task_env}


async def test_more_names_can_be_passed_but_never_the_cores_own(data: Path, make_executor):
    core_env = {"PATH": os.environ["PATH"], "WANDB_API_KEY": "w", "HF_TOKEN": "h", "OTHER": "o", **SECRETS}
    settings = LocalSettings(pass_env=("WANDB_API_KEY", "HF_*", "ODIN_TOKEN", "ODIN_*"))
    executor, reports = make_executor(settings, environ=core_env)
    la = make_launch(data, "e2", "pass", DUMP_ENV)
    await executor.submit(la)
    await reports.wait(la, TaskStatus.SUCCEEDED)
    env = task_env(la)
    assert (env["WANDB_API_KEY"], env["HF_TOKEN"]) == ("w", "h")
    assert "OTHER" not in env and not set(SECRETS) & set(env)


def test_more_names_come_from_odin_local_pass_env():
    settings = Settings.from_env({"ODIN_LOCAL_PASS_ENV": " WANDB_API_KEY, HF_* ,"})
    assert settings.local.pass_env == ("WANDB_API_KEY", "HF_*")
    assert settings.local.task_env == LocalSettings().task_env


async def test_relative_helper_paths_resolve_in_the_job_directory(data: Path, tmp_path: Path, make_executor):
    job = tmp_path / "pipelines" / "mnist"
    job.mkdir(parents=True)
    (job / "eval.py").write_text(
        "import json, os, sys\n"
        "json.dump({'cwd': os.getcwd(), 'arg': sys.argv[1]}, open(os.environ['ODIN_OUTPUTS'], 'w'))\n"
    )
    executor, reports = make_executor()
    la = make_launch(data, "w1", "evaluate", "", work_path=job, command=(PY, "eval.py", "--model"))
    await executor.submit(la)  # the docs' own example: `command: python`, `args: [eval.py, ...]`
    done = await reports.wait(la, TaskStatus.SUCCEEDED)
    assert done.outputs == {"cwd": str(job), "arg": "--model"}

    nowhere = make_launch(data, "w1", "no-job-dir", "import json, os; print(os.getcwd())", work_path=tmp_path / "gone")
    await executor.submit(nowhere)  # no job directory (an API-made spec): the task's own directory
    await reports.wait(nowhere, TaskStatus.SUCCEEDED)
    log = (Path(nowhere.run_path) / ".odin" / "logs" / "no-job-dir.log").read_text()
    assert log.strip() == nowhere.task_path


async def test_logs_follow_a_reattached_task(data: Path, gate: Gate, counter: Path, start_core, make_executor):
    la = make_launch(data, "l1", "talk", task_code(counter, gate=gate))
    core = await start_core([la])
    await core.running(la)
    await core.kill()
    executor, reports = make_executor()
    await executor.recover([record(la)])
    ended = asyncio.Event()
    lines: asyncio.Queue[str] = asyncio.Queue()

    async def follow() -> None:
        async for line in executor.logs(record(la), follow=True, until=_is_set(ended)):
            lines.put_nowait(line)

    following = asyncio.ensure_future(follow())
    assert await asyncio.wait_for(lines.get(), 10) == "before"  # written while the first core lived
    gate.release()
    assert await asyncio.wait_for(lines.get(), 10) == "after"  # written after the re-attach
    await reports.wait(la, TaskStatus.SUCCEEDED)
    ended.set()
    await asyncio.wait_for(following, 10)


def _is_set(event: asyncio.Event):
    async def until() -> bool:
        return event.is_set()

    return until


async def test_a_command_that_does_not_exist_is_refused_and_stays_refused(data: Path, make_executor):
    la = make_launch(data, "c1", "typo", "", command=("no-such-command-xyz", "--help"))
    executor, _ = make_executor()
    with pytest.raises(PermanentError, match="cannot run 'no-such-command-xyz'"):
        await executor.submit(la)
    later, reports = make_executor()  # a restarted core finds the refusal, not a lost attempt
    assert await later.recover([record(la, TaskStatus.PENDING)]) == []
    refused = await reports.wait(la, TaskStatus.FAILED)
    assert refused.permanent and refused.message.startswith("cannot run 'no-such-command-xyz'")


@pytest.mark.parametrize(
    ("written", "problem"),
    [
        ("'not json'", "$ODIN_OUTPUTS does not hold JSON"),
        ("'[1, 2]'", "$ODIN_OUTPUTS must hold a JSON object, not list"),
        ("json.dumps({'x': 'y' * 5000})", "outputs are 5009 bytes; the limit is 4096"),
        # before: records showed null where a reference passed "NaN" on
        ("'{\"a\": NaN}'", "$ODIN_OUTPUTS does not hold JSON: NaN is not JSON"),
        ("'{\"b\": 1e999}'", "$ODIN_OUTPUTS does not hold JSON: 1e999 is beyond what a number can hold"),
    ],
)
async def test_bad_outputs_fail_the_attempt_with_a_reason(data: Path, make_executor, written: str, problem: str):
    code = f"import json, os; open(os.environ['ODIN_OUTPUTS'], 'w').write({written})"
    la = make_launch(data, "o1", "out", code)
    executor, reports = make_executor()
    await executor.submit(la)
    failed = await reports.wait(la, TaskStatus.FAILED)
    assert failed.message.startswith(problem) and failed.exit_code == 0


async def test_gpus_asked_for_are_noted_and_the_fail_policy_refuses(data: Path, make_executor):
    have = await asyncio.to_thread(count_gpus)  # what nvidia-smi says on this machine (0 without one)
    la = make_launch(data, "g1", "train", "pass")
    greedy = dataclasses.replace(la, task=dataclasses.replace(la.task, num_gpus=have + 1))
    warn, _ = make_executor()
    assert f"task 'train' asks for {have + 1} GPU(s); this machine has {have}: it runs without them" in warn.notes(
        [greedy.task]
    )
    strict, _ = make_executor(LocalSettings(gpu_policy="fail"))
    with pytest.raises(PermanentError, match=f"needs {have + 1} GPU"):
        await strict.submit(greedy)
    assert not (Path(la.run_path) / ".odin" / "attempts" / "train.1").exists()  # refused before any claim

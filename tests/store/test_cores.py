"""Several cores on one PostgreSQL or MongoDB store: events reach watchers on every core, and a
killed core's runs are adopted and finished by another (real ``odin-core serve`` processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from odin_client.remote import RemoteOdin
from odin_core.model import Event, RunStatus
from odin_core.settings import EngineSettings
from odin_core.store import open_store
from test_engine_backends import Cores, _until, diamond

PY = sys.executable
SERVER_BACKENDS = ["postgres", "mongo"]


@pytest.fixture(params=SERVER_BACKENDS)
def shared_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


async def test_a_watch_on_another_core_gets_every_event(shared_url: str, tmp_path: Path) -> None:
    cores = Cores(shared_url, tmp_path)
    try:
        driver, watcher = await cores.engine(), await cores.engine(EngineSettings(heartbeat_s=0.2))
        await driver.start(adopt=False)
        await watcher.start(adopt=False)
        everything: list[Event] = []

        async def watch_all() -> None:
            async for item in watcher.watch(None):
                if isinstance(item, Event):
                    everything.append(item)

        tail = asyncio.ensure_future(watch_all())
        await asyncio.sleep(0.5)  # the relay's feed is listening (LISTEN, or the first look of a poll)
        run = await driver.submit(diamond(tmp_path / "count", slow_s=0.5))
        seen = [ev async for ev in watcher.watch(run.run_id)]  # ends with the run, on the core that does not drive it
        assert not watcher.driving(run.run_id)
        assert (await watcher.store.lease_of(run.run_id)).lease.owner == driver.owner
        stored = await watcher.store.events(run.run_id)
        assert seen == stored and seen[-1].status == "TERMINATED"
        await _until_events(everything, run.run_id, len(stored))
        mine = [e for e in everything if e.run_id == run.run_id]
        assert [e.seq for e in mine] == [e.seq for e in stored], "the all-runs watch: each event once, in order"
        tail.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await tail
    finally:
        await cores.close()


async def _until_events(events: list[Event], run_id: str, n: int) -> None:
    async def enough() -> bool:
        return sum(e.run_id == run_id for e in events) >= n

    await _until(enough, timeout_s=10)


# -- real processes -----------------------------------------------------------------------------

FLAKY = f"""
    name: flaky
    tasks:
      - name: gate
        image: busybox
        command: {PY}
        args:
        - "-c"
        - "import os,sys;a=os.environ['ODIN_ATTEMPT'];open('COUNTER','a').write('gate '+a+'\\\\n');sys.exit(3*(a<'2'))"
        retries: {{limit: 1, backoff: BACKOFF}}
      - name: after
        image: busybox
        command: {PY}
        args: ["-c", "open('COUNTER','a').write('after\\\\n')"]
        depends: gate
    """


class Core:
    """One ``odin-core serve`` process on the shared store and home."""

    def __init__(self, url: str, home: Path, root: Path, log: Path) -> None:
        env = {
            **os.environ,
            "ODIN_STORE": url,
            "ODIN_HOME": str(home),
            "ODIN_HEARTBEAT_S": "0.3",
            "ODIN_TAKEOVER_AFTER_S": "2",
        }
        self.log = log
        out = open(log, "wb")  # noqa: SIM115 - the process owns it
        self.proc = subprocess.Popen(
            [PY, "-m", "odin_core", "serve", "--port", "0", "--root-path", str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=out,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"core did not start: {line!r}\n{log.read_text()}")
        self.url = line.split("serving ", 1)[1].split()[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def two_cores(shared_url: str, tmp_path: Path):
    root = tmp_path / "pipelines"
    counter = tmp_path / "counter"
    # "patient": a retry's wait long enough that a poller stalled on a loaded machine does not miss it
    for job, backoff in (("flaky", "4s"), ("patient", "12s")):
        (root / job).mkdir(parents=True)
        text = textwrap.dedent(FLAKY).replace("COUNTER", str(counter)).replace("BACKOFF", backoff)
        (root / job / "main.yml").write_text(text)
    home = tmp_path / "home"
    cores = [Core(shared_url, home, root, tmp_path / f"core{i}.log") for i in range(2)]
    yield cores, counter, shared_url
    for core in cores:
        core.stop()


async def test_a_killed_core_s_runs_are_finished_by_another(two_cores) -> None:
    (a, b), counter, url = two_cores
    async with RemoteOdin(a.url) as at_a, RemoteOdin(b.url) as at_b:
        run = await at_a.submit("patient")
        watched = asyncio.ensure_future(_collect(at_b, run.run_id))  # WATCH on the core that does not drive it
        async with _explained(at_b, run.run_id, url, (a, b), counter):
            await _until(lambda: _task_is(at_b, run.run_id, "gate", "RETRYING"), timeout_s=30)
            assert (await at_b.run(run.run_id)).run.owner == run.owner, "A drives it; B answers STATUS for it"
            a.kill()  # kill -9 while the run waits for its retry
            final = await asyncio.wait_for(at_b.wait(run.run_id), 60)
        events = await asyncio.wait_for(watched, 30)
        view = await at_b.run(run.run_id)
    assert final.status is RunStatus.DONE, (final.message, b.log.read_text()[-3000:])
    assert view.run.owner != run.owner, "B adopted the run"
    assert counter.read_text().splitlines() == ["gate 1", "gate 2", "after"], "every attempt exactly once"
    assert [e.seq for e in events] == list(range(1, len(events) + 1)) and events[-1].status == "DONE"


@contextlib.asynccontextmanager
async def _explained(
    odin: RemoteOdin, run_id: str, url: str, cores: tuple[Core, ...], counter: Path
) -> AsyncIterator[None]:
    """A failure inside says what the store and both cores saw (a timeout alone says nothing of why)."""
    try:
        yield
    except (AssertionError, TimeoutError) as e:
        view = await asyncio.wait_for(odin.run(run_id), 10)
        tasks = [(t.name, t.attempt, t.status.value, t.message) for t in view.tasks]
        store = await open_store(url)
        try:
            t0 = view.run.submitted
            events = [
                f"{e.seq} +{e.time - t0:.2f}s {e.task or 'run'} {e.status} {e.message}"
                for e in await store.events(run_id)
            ]
        finally:
            await store.close()
        logs = "\n".join(f"--- core {i} (pid {c.proc.pid}):\n{c.log.read_text()[-4000:]}" for i, c in enumerate(cores))
        ran = counter.read_text() if counter.exists() else "(none)"
        when = f"failed +{time.time() - t0:.2f}s after the submit"
        raise AssertionError(
            f"{e!r} ({when})\nrun: {view.run}\ntasks: {tasks}\nevents:\n"
            + "\n".join(events)
            + f"\nattempts run: {ran!r}\n{logs}"
        ) from e


async def _collect(odin: RemoteOdin, run_id: str) -> list[Event]:
    return [ev async for ev in odin.watch(run_id)]


async def _task_is(odin: RemoteOdin, run_id: str, name: str, status: str) -> bool:
    return any(t.name == name and t.status.value == status for t in (await odin.run(run_id)).tasks)


async def test_each_run_is_driven_by_the_core_that_started_it(two_cores) -> None:
    (a, b), counter, _ = two_cores
    async with RemoteOdin(a.url) as at_a, RemoteOdin(b.url) as at_b:
        runs = [await at_a.submit("flaky"), await at_b.submit("flaky"), await at_a.submit("flaky")]
        owners = {r.run_id: r.owner for r in runs}
        assert len(set(owners.values())) == 2
        for r in runs:
            assert (await asyncio.wait_for(at_b.wait(r.run_id), 60)).status is RunStatus.DONE
            assert (await at_a.run(r.run_id)).run.owner == owners[r.run_id], "no run changed hands"
        assert sorted(counter.read_text().splitlines()) == sorted(["gate 1", "gate 2", "after"] * 3)

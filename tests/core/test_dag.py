"""Property-based tests of the pure DAG decisions on random DAGs with random failures and retries."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odin_core.dag import DagState
from odin_core.model import AttemptUpdate, RunRecord, RunStatus, TaskRecord, TaskStatus
from odin_core.spec.model import PipelineSpec, RetryPolicy, TaskSpec

RUN = "run-1"


@st.composite
def pipelines(draw: st.DrawFn) -> tuple[PipelineSpec, dict[str, list[bool]]]:
    n = draw(st.integers(1, 14))
    names = [f"t{i}" for i in range(n)]
    tasks, outcomes = [], {}
    for i, name in enumerate(names):
        deps = draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else set()
        limit = draw(st.integers(0, 2))
        tasks.append(
            TaskSpec(
                name,
                "img",
                ("true",),
                depends=tuple(sorted(deps)),
                retries=RetryPolicy(limit=limit, backoff_s=0.5, factor=2.0, max_backoff_s=2.0),
            )
        )
        outcomes[name] = draw(st.lists(st.booleans(), min_size=limit + 1, max_size=limit + 1))
    spec = PipelineSpec(
        "p",
        tuple(tasks),
        max_parallel=draw(st.one_of(st.none(), st.integers(1, 4))),
        on_failure=draw(st.sampled_from(["stop", "continue"])),
    )
    return spec, outcomes


def fresh(spec: PipelineSpec) -> DagState:
    run = RunRecord(RUN, job="p")
    return DagState.from_records(spec, run, [TaskRecord(RUN, t.name) for t in spec.tasks])


def ancestors(spec: PipelineSpec, name: str) -> set[str]:
    deps = {t.name: t.depends for t in spec.tasks}
    seen: set[str] = set()
    todo = list(deps[name])
    while todo:
        d = todo.pop()
        if d not in seen:
            seen.add(d)
            todo.extend(deps[d])
    return seen


def simulate(spec: PipelineSpec, outcomes: dict[str, list[bool]], seed: int, rebuild_every: int = 0) -> DagState:
    rng = random.Random(seed)
    state = fresh(spec)
    now, running, steps = 0.0, [], 0
    while True:
        steps += 1
        assert steps < 10_000, "the run never finished"
        if rebuild_every and steps % rebuild_every == 0:  # a restart: rebuild from the records alone
            state = DagState.from_records(spec, state.run, list(state.records.values()))
        plan = state.decide(now)
        for rec in plan.starts:
            for dep in spec.task(rec.name).depends:
                assert state.records[dep].status is TaskStatus.SUCCEEDED, f"{rec.name} started before {dep}"
            running.append((rec.name, rec.attempt))
        killed = {(r.name, r.attempt) for r in plan.kills}
        running = [r for r in running if r not in killed]
        if spec.max_parallel is not None:
            assert state.active <= spec.max_parallel
        if state.run.status.is_terminal:
            return state
        if running:
            name, attempt = running.pop(rng.randrange(len(running)))
            ok = outcomes[name][attempt - 1]
            status = TaskStatus.SUCCEEDED if ok else TaskStatus.FAILED
            state.update(AttemptUpdate(RUN, name, attempt, TaskStatus.RUNNING), now)
            state.update(AttemptUpdate(RUN, name, attempt, status, exit_code=0 if ok else 1), now)
        else:
            assert plan.wake_at is not None, "nothing running, nothing scheduled, yet the run is not over"
            now = plan.wake_at


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(pipelines(), st.integers(0, 2**32), st.sampled_from([0, 3]))
def test_random_dags_end_with_every_task_terminal(case, seed, rebuild_every):
    spec, outcomes = case
    state = simulate(spec, outcomes, seed, rebuild_every)
    records = state.records
    assert all(r.status.is_terminal for r in records.values())
    failed = {n for n, r in records.items() if r.status is TaskStatus.FAILED}
    for name, rec in records.items():
        attempts_ok = outcomes[name][: rec.attempt]
        if rec.status is TaskStatus.SUCCEEDED:
            assert attempts_ok[-1] is True and not any(attempts_ok[:-1])
        if rec.status is TaskStatus.FAILED:
            assert not any(attempts_ok) and rec.attempt == spec.task(name).retries.limit + 1
    if spec.on_failure == "continue":
        for name, rec in records.items():
            blocked = bool(ancestors(spec, name) & failed)
            assert (rec.status is TaskStatus.SKIPPED) == blocked, name
    if failed:
        assert state.run.status is RunStatus.TERMINATED
        named = [f for f in failed if state.run.message.startswith(f"task {f!r} failed")]
        assert len(named) == 1, state.run.message
    else:
        assert state.run.status is RunStatus.DONE
        assert all(r.status is TaskStatus.SUCCEEDED for r in records.values())


def chain(n: int, **task: object) -> PipelineSpec:
    return PipelineSpec(
        "p", tuple(TaskSpec(f"t{i}", "img", ("true",), depends=(f"t{i - 1}",) if i else (), **task) for i in range(n))
    )


def test_timeout_kills_and_retries_then_fails():
    spec = chain(1, timeout_s=5.0, retries=RetryPolicy(limit=1, backoff_s=1.0))
    state = fresh(spec)
    plan = state.decide(0.0)
    assert [r.deadline for r in plan.starts] == [5.0]
    assert plan.wake_at == 5.0
    plan = state.decide(5.0)
    assert [r.name for r in plan.kills] == ["t0"]
    assert state.records["t0"].status is TaskStatus.RETRYING
    assert state.records["t0"].message == "attempt 1 failed: timed out after 5s; retrying"
    assert state.decide(6.0).starts[0].attempt == 2
    state.decide(11.0)
    assert state.records["t0"].status is TaskStatus.FAILED
    assert state.records["t0"].message == "timed out after 5s"
    assert state.run.status is RunStatus.TERMINATED


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        pytest.param(1, [1.0], id="one"),
        pytest.param(4, [1.0, 2.0, 4.0, 4.0], id="capped"),
    ],
)
def test_backoff_grows_by_factor_up_to_cap(failures, expected):
    policy = RetryPolicy(limit=10, backoff_s=1.0, factor=2.0, max_backoff_s=4.0)
    assert [policy.delay_s(i) for i in range(1, failures + 1)] == expected


def test_stop_cancels_running_and_skips_waiting():
    state = fresh(chain(3))
    plan = state.decide(0.0)
    state.request_stop("stopped by test")
    plan = state.decide(1.0)
    assert [r.name for r in plan.kills] == ["t0"]
    statuses = {n: r.status for n, r in state.records.items()}
    assert statuses == {"t0": TaskStatus.CANCELLED, "t1": TaskStatus.SKIPPED, "t2": TaskStatus.SKIPPED}
    assert state.run.status is RunStatus.TERMINATED and state.run.message == "stopped by test"


def test_stale_reports_are_ignored():
    state = fresh(chain(1, retries=RetryPolicy(limit=1, backoff_s=0.0)))
    state.decide(0.0)
    state.update(AttemptUpdate(RUN, "t0", 1, TaskStatus.FAILED, exit_code=1, message="boom"), 0.0)
    state.decide(0.0)
    assert state.records["t0"].attempt == 2
    assert not state.update(AttemptUpdate(RUN, "t0", 1, TaskStatus.SUCCEEDED), 0.0)
    assert state.records["t0"].status is TaskStatus.PENDING


def test_early_exit_skips_the_rest_and_ends_done():
    spec = PipelineSpec(
        "p",
        (
            TaskSpec("a", "img", ("true",), request_early_exit=True),
            TaskSpec("b", "img", ("true",), depends=("a",)),
        ),
    )
    state = fresh(spec)
    state.decide(0.0)
    state.update(AttemptUpdate(RUN, "a", 1, TaskStatus.SUCCEEDED), 0.0)
    state.decide(0.0)
    assert state.records["b"].status is TaskStatus.SKIPPED
    assert state.run.status is RunStatus.DONE


def test_a_dependent_starts_as_soon_as_its_own_parents_succeed():
    """No level-by-level waiting: b (after a) starts while slow sibling s still runs."""
    spec = PipelineSpec(
        "p",
        (
            TaskSpec("a", "img", ("true",)),
            TaskSpec("s", "img", ("true",)),
            TaskSpec("b", "img", ("true",), depends=("a",)),
        ),
    )
    state = fresh(spec)
    assert {r.name for r in state.decide(0.0).starts} == {"a", "s"}
    state.update(AttemptUpdate(RUN, "a", 1, TaskStatus.SUCCEEDED), 1.0)
    assert [r.name for r in state.decide(1.0).starts] == ["b"]


def test_large_dag_bookkeeping_is_linear():
    spec = chain(20_000)
    state = fresh(spec)
    for i in range(20_000):
        plan = state.decide(float(i))
        (rec,) = plan.starts
        state.update(AttemptUpdate(RUN, rec.name, 1, TaskStatus.SUCCEEDED), float(i))
    assert state.decide(20_000.0).run is not None
    assert state.run.status is RunStatus.DONE

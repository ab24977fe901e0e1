"""The pure parts of the CLI: what a signal does while a run is followed, answers, ages, compact values."""

from __future__ import annotations

import signal

import pytest
from odin_client.cli.fmt import age, compact
from odin_client.cli.follow import Action, Policy, answer, decide, reason

REMOTE_TTY = Policy(remote=True, interactive=True)
REMOTE = Policy(remote=True, interactive=False)
LOCAL_TTY = Policy(remote=False, interactive=True)
LOCAL = Policy(remote=False, interactive=False)
DRIVER = Policy(remote=False, interactive=False, background=True)
INT, TERM, HUP = signal.SIGINT, signal.SIGTERM, signal.SIGHUP


@pytest.mark.parametrize(
    ("policy", "sig", "stopping", "action"),
    [
        # a run on a server never depends on its client: only an explicit yes stops it
        (REMOTE_TTY, INT, False, Action.ASK),
        (REMOTE_TTY, INT, True, Action.DETACH),
        (REMOTE_TTY, TERM, False, Action.DETACH),
        (REMOTE_TTY, HUP, False, Action.DETACH),
        (REMOTE, INT, False, Action.DETACH),
        (REMOTE, TERM, False, Action.DETACH),
        # an embedded `odin run` is the engine: leaving would orphan the run, so it is ended cleanly
        (LOCAL_TTY, INT, False, Action.ASK),
        (LOCAL_TTY, TERM, False, Action.STOP),
        (LOCAL_TTY, HUP, False, Action.STOP),
        (LOCAL, INT, False, Action.STOP),
        (LOCAL, TERM, False, Action.STOP),
        (LOCAL, INT, True, Action.IGNORE),  # already stopping: wait for the end
        (DRIVER, HUP, False, Action.IGNORE),
        (DRIVER, TERM, False, Action.STOP),
    ],
)
def test_decide(policy, sig, stopping, action) -> None:
    assert decide(sig, policy, stopping=stopping) is action


@pytest.mark.parametrize(
    ("typed", "remote", "local"),
    [
        ("y\n", Action.STOP, Action.STOP),
        ("YES", Action.STOP, Action.STOP),
        ("\n", Action.DETACH, Action.CONTINUE),
        ("", Action.DETACH, Action.CONTINUE),  # end of input
        ("n", Action.DETACH, Action.CONTINUE),
        ("c\n", Action.CONTINUE, Action.CONTINUE),
    ],
)
def test_answers(typed, remote, local) -> None:
    assert answer(typed, REMOTE_TTY) is remote
    assert answer(typed, LOCAL_TTY) is local


def test_reasons_name_the_signal() -> None:
    assert reason(INT, LOCAL) == "interrupted by the user"
    assert reason(TERM, LOCAL) == "stopped: `odin run` got SIGTERM"
    assert reason(TERM, DRIVER) == "stopped: its background driver got SIGTERM"
    assert reason(HUP, LOCAL).startswith("stopped: the terminal of `odin run` closed")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s ago"), (59.9, "59s ago"), (60, "1m ago"), (3599, "59m ago"), (7200, "2h ago"),
                          (3 * 86400, "3d ago")],
)  # fmt: skip
def test_age(seconds, text) -> None:
    assert age(1_000_000.0, now=1_000_000.0 + seconds) == text


def test_age_after_a_week_is_a_date() -> None:
    assert age(86400.0 * 365, now=86400.0 * 400).count("-") == 2


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.9791666, "0.9792"), (1.0, "1"), ("svm", "svm"), (3, "3"), ({"a": 1}, '{"a": 1}'), (float("nan"), "nan")],
)
def test_compact(value, text) -> None:
    assert compact(value) == text

"""Fixtures of the midgard tests: recorded NVML boards replayed below the real pynvml, and agents on free ports."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from midgard.agent import Agent
from midgard.server import serve
from midgard.testing import fake_nvml
from midgard_support import settings


@pytest.fixture
def board() -> Callable[[str], dict[str, Any]]:
    """A fresh (mutable) copy of a recorded board table."""
    return lambda name: copy.deepcopy(fake_nvml.load_board(name))


@pytest.fixture
def replay() -> Iterator[Callable[[dict[str, Any]], fake_nvml.FakeNvmlLibrary]]:
    """``replay(table)`` points pynvml at a fake library replaying ``table`` until the test ends."""
    contexts: list[Any] = []

    def start(table: dict[str, Any]) -> fake_nvml.FakeNvmlLibrary:
        ctx = fake_nvml.installed(table)
        contexts.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in reversed(contexts):
        ctx.__exit__(None, None, None)


class RunningAgent:
    def __init__(self, agent: Agent, port: int) -> None:
        self.agent = agent
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture
async def start_agent() -> AsyncIterator[Callable[..., Any]]:
    """``await start_agent(**settings)``: a running agent (reading loop + HTTP server); stopped at the end."""
    running: list[tuple[Agent, Any]] = []

    async def start(*, loop: bool = True, **overrides: Any) -> RunningAgent:
        agent = Agent(settings(**overrides))
        runner, port = await serve(agent, "127.0.0.1", 0)
        running.append((agent, runner))
        if loop:
            agent.start()
        return RunningAgent(agent, port)

    yield start
    for agent, runner in reversed(running):
        await agent.close()
        await runner.cleanup()


class RunningGateway:
    def __init__(self, app: Any, port: int, token_file: Any) -> None:
        from odin_http.nodes import REGISTRY

        self.registry = app[REGISTRY]
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token_file = token_file


@pytest.fixture
async def start_gateway(tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """``await start_gateway(port=0, tokens=["t1"], **NodesSettings)``: an aiohttp app with only the node module."""
    from aiohttp import web
    from odin_http.nodes import NodesSettings, setup

    runners: list[Any] = []

    async def start(*, port: int = 0, tokens: list[str] | None = None, **overrides: Any) -> RunningGateway:
        token_file = tmp_path / f"node-tokens-{len(runners)}"
        token_file.write_text("\n".join(["# node tokens"] + (tokens if tokens is not None else ["node-secret"])))
        settings = NodesSettings(token_file=str(token_file), kube_api_url="none", **overrides)
        app = web.Application()
        setup(app, settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        runners.append(runner)
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return RunningGateway(app, bound, token_file)

    yield start
    for runner in reversed(runners):
        await runner.cleanup()

"""spec_to_dict / spec_from_dict round-trip exactly, through JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from odin_core.spec import (
    ConfigMapMount,
    EphemVolume,
    Location,
    Mount,
    PipelineSpec,
    Resources,
    RetryPolicy,
    SecretMount,
    SecurityContext,
    TaskSpec,
    instantiate,
    load_pipeline,
    spec_from_dict,
    spec_to_dict,
)

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

text = st.text(max_size=12)
opt = st.none() | text
floats = st.floats(min_value=0, max_value=1e6, allow_nan=False)
strs = st.lists(text, max_size=3).map(tuple)

tasks = st.builds(
    TaskSpec,
    name=text,
    image=text,
    command=strs,
    args=strs,
    depends=strs,
    mounts=st.lists(st.builds(Mount, text, text, opt), max_size=2).map(tuple),
    ephem_volumes=st.lists(st.builds(EphemVolume, text, text, text, opt, opt), max_size=2).map(tuple),
    secrets=st.lists(st.builds(SecretMount, text, text, opt, st.none() | st.integers(0, 511)), max_size=2).map(tuple),
    config_maps=st.lists(st.builds(ConfigMapMount, text, text, opt), max_size=2).map(tuple),
    cpu=st.none() | st.builds(Resources, opt, opt),
    memory=st.none() | st.builds(Resources, opt, opt),
    num_gpus=st.integers(0, 8),
    security_context=st.none() | st.builds(SecurityContext, *[st.none() | st.integers(0, 70000)] * 3),
    pull_policy=st.sampled_from(["Always", "IfNotPresent", "Never"]),
    node_selector=st.dictionaries(text, text, max_size=2),
    resource_type=text,
    num_workers=st.integers(1, 8),
    inputs=strs,
    outputs=st.dictionaries(text, text | strs, max_size=3),
    retries=st.builds(RetryPolicy, st.integers(0, 9), floats, floats, floats),
    timeout_s=st.none() | floats,
    env=st.dictionaries(text, text, max_size=3),
    request_early_exit=st.booleans(),
)
specs = st.builds(
    PipelineSpec,
    name=text,
    tasks=st.lists(tasks, max_size=3).map(tuple),
    job=text,
    path=st.none() | st.sampled_from([Path("/a/b"), Path("/p")]),
    max_parallel=st.none() | st.integers(1, 64),
    on_failure=st.sampled_from(["stop", "continue"]),
    locations=st.dictionaries(text, st.builds(Location, text, st.integers(0, 99), st.integers(0, 99)), max_size=3),
)


@given(specs)
def test_round_trip_through_json(spec: PipelineSpec) -> None:
    data = json.loads(json.dumps(spec_to_dict(spec)))
    back = spec_from_dict(data)
    assert back == spec
    assert back.locations == spec.locations
    assert spec_to_dict(back) == data


def test_round_trip_of_a_loaded_and_instantiated_spec(write_job: WriteJob) -> None:
    spec = load_pipeline(
        write_job(
            """
            name: demo
            max_parallel: 2
            on_failure: continue
            tasks:
              - name: a
                image: i
                command: [python, a.py]
                args: [$TASK_IDS, '{^b.outputs.x}']
                mounts: {name: d, path: /d, claim: c}
                cpu: {limits: 2}
                retries: {limit: 2, backoff: 1s}
                timeout: 1m
                env: {A: '1'}
                outputs: {m: [x, y]}
              - {name: b, image: i, command: c}
            """
        )
    )
    run = instantiate(spec, pipe_id="demo-1", root_path="/r", data_path="/d")
    for s in (spec, run):
        back = spec_from_dict(json.loads(json.dumps(spec_to_dict(s))))
        assert back == s
        assert back.locations == s.locations


def test_from_dict_tolerates_missing_and_unknown_keys() -> None:
    data = {"name": "x", "tasks": [{"name": "t", "image": "i", "command": ["c"], "added_later": 1}]}
    spec = spec_from_dict(data)
    assert spec.tasks[0] == TaskSpec("t", "i", ("c",))
    assert (spec.job, spec.path, spec.on_failure) == ("", None, "stop")

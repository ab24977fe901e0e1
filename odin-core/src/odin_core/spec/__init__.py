"""Pipeline definitions: load and validate ``main.yml``, ids, variables, references, kinds and the task graph.

Pure: reads the pipeline directory and nothing else; imports nothing from the engine, executors or store.
"""

from __future__ import annotations

from .graph import find_cycle, find_cycles, format_cycle, levels, to_dot, to_text, topological_order
from .ids import check_run_id, check_task_name, new_pipe_id, split_resource, task_id
from .kinds import canonical_kind, known_kinds, register_kind
from .loader import load_pipeline, validate_pipeline
from .model import (
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
)
from .references import Reference, ReferenceResolutionError, find_references, resolve_references
from .serialize import spec_from_dict, spec_to_dict
from .variables import VARIABLES, instantiate

__all__ = [
    "VARIABLES",
    "ConfigMapMount",
    "EphemVolume",
    "Location",
    "Mount",
    "PipelineSpec",
    "Reference",
    "ReferenceResolutionError",
    "Resources",
    "RetryPolicy",
    "SecretMount",
    "SecurityContext",
    "TaskSpec",
    "canonical_kind",
    "check_run_id",
    "check_task_name",
    "find_cycle",
    "find_cycles",
    "find_references",
    "format_cycle",
    "instantiate",
    "known_kinds",
    "levels",
    "load_pipeline",
    "new_pipe_id",
    "register_kind",
    "resolve_references",
    "spec_from_dict",
    "spec_to_dict",
    "split_resource",
    "task_id",
    "to_dot",
    "to_text",
    "topological_order",
    "validate_pipeline",
]

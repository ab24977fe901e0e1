"""Registry of the resource kinds a task may create, with case-insensitive aliases.

Pipelines written for the first Odin use many spellings (``pytjob``, ``svc``, ``deploy``); the registry maps
every spelling to one canonical name so executors only ever see canonical kinds. Extensions (a new CRD
executor) call :func:`register_kind` instead of editing this table.
"""

from __future__ import annotations

_CANONICAL: dict[str, str] = {}  # lowercase canonical -> canonical
_ALIASES: dict[str, str] = {}  # lowercase alias (canonical included) -> canonical


def register_kind(canonical: str, *aliases: str) -> None:
    """Add a kind (or more aliases for a known kind); an alias may not point at two kinds."""
    if not canonical or not canonical.strip():
        raise ValueError("a kind needs a name")
    canonical = _CANONICAL.get(canonical.lower(), canonical)
    for alias in (canonical, *aliases):
        key = alias.lower()
        owner = _ALIASES.get(key)
        if owner is not None and owner != canonical:
            raise ValueError(f"kind alias {alias!r} already names {owner}")
    _CANONICAL[canonical.lower()] = canonical
    for alias in (canonical, *aliases):
        _ALIASES[alias.lower()] = canonical


def canonical_kind(name: str) -> str | None:
    """The canonical kind for any spelling, or None when unknown."""
    if not isinstance(name, str):
        return None
    return _ALIASES.get(name.strip().lower())


def known_kinds() -> list[str]:
    """Canonical kind names in registration order (used in error messages)."""
    return list(_CANONICAL.values())


def kind_aliases(canonical: str) -> list[str]:
    """Every lowercase spelling of a kind (for documentation and hints)."""
    return [alias for alias, owner in _ALIASES.items() if owner == canonical]


register_kind("Pod", "po", "pod")
register_kind("Job", "job", "batchjob")
register_kind("Deployment", "deploy", "deployment")
register_kind("Service", "svc", "service")
register_kind("TFJob", "tfjob", "tf")
register_kind("PyTorchJob", "pytorchjob", "pytjob", "ptjob", "pytorch")
register_kind("MPIJob", "mpijob", "mpi")
register_kind("ElasticJob", "elasticjob", "ej", "elastic")

"""Run ids given on the command line: DNS labels (``--run-id``), checked before anything is created.

``odin_core.spec.ids.check_run_id`` is the rule (issue 8); until it is on main this module carries the
same rule so the CLI refuses bad ids today. Delete the fallback once the core's check has landed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from odin_core.errors import InvalidRequest
from odin_core.spec import ids as _core_ids

MAX_RUN_ID = 63
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _fallback_check_run_id(value: str) -> str:
    if len(value) > MAX_RUN_ID or not _LABEL.match(value) or "--" in value:
        raise InvalidRequest(
            f"{value!r} is not a valid run id: use at most {MAX_RUN_ID} lowercase letters, digits and '-' "
            "(a DNS label, starting and ending with a letter or digit, without '--'), e.g. 'mnist-try-3'"
        )
    return value


check_run_id: Callable[[str], str] = getattr(_core_ids, "check_run_id", _fallback_check_run_id)

__all__ = ["check_run_id"]

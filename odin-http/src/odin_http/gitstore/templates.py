"""Templated definitions: every ``*.jinja2`` file of a job rendered with the request's context, sandboxed.

Pure. The sandbox (Jinja's ImmutableSandboxedEnvironment) refuses attribute access to internals and any change of
the context; undefined variables are errors, so a missing context value is a clear 400, not an empty string.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .. import constants as C
from ..errors import InvalidRequest

MAX_CONTEXT_BYTES = 64 * 1024
MAX_OUTPUT_BYTES = 4 << 20

_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)


def check_context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise InvalidRequest('"context" must be an object of template values')
    if len(json.dumps(context, default=str)) > MAX_CONTEXT_BYTES:
        raise InvalidRequest(f'"context" is larger than {MAX_CONTEXT_BYTES} bytes')
    return context


def is_templated(files: Mapping[str, bytes]) -> bool:
    return any(name.endswith(C.TEMPLATE_SUFFIX) for name in files)


def render(files: Mapping[str, bytes], context: Mapping[str, Any]) -> dict[str, bytes]:
    """{output name: content} of every template (``main.yml.jinja2`` → ``main.yml``)."""
    out: dict[str, bytes] = {}
    for name, data in sorted(files.items()):
        if not name.endswith(C.TEMPLATE_SUFFIX):
            continue
        target = name[: -len(C.TEMPLATE_SUFFIX)]
        try:
            text = _ENV.from_string(data.decode()).render(**context)
        except UnicodeDecodeError:
            raise InvalidRequest(f"template {name} is not UTF-8 text") from None
        except jinja2.TemplateSyntaxError as e:
            raise InvalidRequest(f"template {name}:{e.lineno}: {e.message}") from None
        except jinja2.UndefinedError as e:
            raise InvalidRequest(f"template {name}: {e.message}; give it in the request's context") from None
        except SecurityError as e:
            raise InvalidRequest(f"template {name}: refused by the sandbox: {e}") from None
        except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as e:
            raise InvalidRequest(f"template {name}: {e}") from None
        encoded = text.encode()
        if len(encoded) > MAX_OUTPUT_BYTES:
            raise InvalidRequest(f"template {name} renders to more than {MAX_OUTPUT_BYTES} bytes")
        out[target] = encoded
    return out

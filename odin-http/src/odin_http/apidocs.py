"""The human-readable API page, rendered from the OpenAPI document (no scripts, no external assets)."""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.op{margin:.8rem 0;padding:.5rem .8rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}
code{font-family:monospace;background:#f5f5f5;padding:0 .2rem}
.get{color:#06c}.post{color:#080}.put{color:#a60}.delete{color:#c00}
small{color:#666}table{border-collapse:collapse}td{padding:.1rem .6rem .1rem 0;vertical-align:top}
"""


def _operation(path: str, method: str, spec: dict[str, Any]) -> str:
    role = spec.get("x-odin-role", "none")
    auth = {"none": "no token", "read": "token unless public reads", "user": "token", "admin": "admin token"}[role]
    params = "".join(
        f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{html.escape(p['in'])}</td>"
        f"<td>{html.escape(p.get('description', ''))}</td></tr>"
        for p in spec.get("parameters", [])
    )
    codes = ", ".join(sorted(spec.get("responses", {})))
    body = spec.get("requestBody", {}).get("content", {})
    return (
        f'<div class="op"><span class="m {method}">{method.upper()}</span> <code>{html.escape(path)}</code> '
        f"<small>({auth})</small><div>{html.escape(spec.get('summary', ''))}</div>"
        + (f"<div><small>body: {html.escape(', '.join(body))}</small></div>" if body else "")
        + (f"<table>{params}</table>" if params else "")
        + f"<div><small>answers: {codes}</small></div></div>"
    )


def render_page(doc: dict[str, Any]) -> str:
    by_tag: dict[str, list[str]] = {}
    for path, ops in doc["paths"].items():
        for method, spec in ops.items():
            by_tag.setdefault(spec["tags"][0], []).append(_operation(path, method, spec))
    sections = "".join(f"<h2>{html.escape(tag)}</h2>{''.join(items)}" for tag, items in by_tag.items())
    schemas = html.escape(json.dumps(doc["components"]["schemas"], indent=2))
    info = doc["info"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info['title'])}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(info['title'])} "
        f"<small>{html.escape(info['version'])}</small></h1><p>{html.escape(info['description'])}</p>"
        f"<p>Machine-readable: <a href='openapi.json'>openapi.json</a> (OpenAPI {doc['openapi']}).</p>"
        f"{sections}<h2>Schemas</h2><pre>{schemas}</pre></body></html>"
    )

"""Pure parts of the gateway: names, tokens, settings, templates, the throttle's decision, the wire format."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import jwt
import pytest
from odin_http import constants as C
from odin_http.errors import STATUS_BY_CODE, AuthError, InvalidRequest, error_body, status_of
from odin_http.gitstore.names import file_path, job_path
from odin_http.gitstore.templates import check_context, render
from odin_http.settings import AuthSettings, Secret, Settings, markdown
from odin_http.throttle import retry_after
from odin_http.tokens import TokenIssuer
from odin_http.wire import camel, snake, snake_keys

KEY = "k" * 64
AUTH = AuthSettings(jwt_secret=Secret(KEY))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("train", "train", id="plain"),
        pytest.param("team__train", "team/train", id="nested-url-form"),
        pytest.param("team/train", "team/train", id="nested-slash"),
        pytest.param("a.b-c_d+1", "a.b-c_d+1", id="punctuation"),
    ],
)
def test_job_names_accepted(given: str, expected: str) -> None:
    assert job_path(given) == expected


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param("", id="empty"),
        pytest.param("..", id="dotdot"),
        pytest.param("team__..__etc", id="dotdot-inside"),
        pytest.param("/etc", id="absolute"),
        pytest.param(".git", id="git-dir"),
        pytest.param("team__.odin", id="state-dir"),
        pytest.param("a" * 300, id="too-long"),
        pytest.param("a\\b", id="backslash"),
        pytest.param("a b", id="space"),
        pytest.param("__".join("a" * 9), id="too-deep"),
        pytest.param(None, id="not-a-string"),
    ],
)
def test_job_names_refused(bad: object) -> None:
    with pytest.raises(InvalidRequest):
        job_path(bad)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("main.yml", "main.yml"), ("./main.yml", "main.yml"), ("configs/a b.yml", "configs/a b.yml")],
)
def test_file_names_accepted(given: str, expected: str) -> None:
    assert file_path(given) == expected


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/../../x", "/etc/passwd", ".git/config", "a/.git/hooks/x", "a//b", "a\\b", "x\x00y", "."]
)
def test_file_names_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest):
        file_path(bad)


# -- tokens --------------------------------------------------------------------------------------------------


def _forge(payload: dict, key: str = KEY, alg: str = "HS256") -> str:
    return jwt.encode(payload, key, algorithm=alg)


def _claims(**changes: object) -> dict:
    now = int(time.time())
    base = {"iss": "odin-http", "aud": "odin", "sub": "ann", "iat": now, "nbf": now, "exp": now + 60, "jti": "j1",
            "typ": "access", "role": "user", "ver": 1}  # fmt: skip
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_token_issued_verifies() -> None:
    issuer = TokenIssuer(AUTH)
    issued = issuer.issue("ann", "admin", 3, kind=C.TOKEN_ACCESS)
    claims = issuer.verify(issued.token)
    assert (claims.subject, claims.role, claims.version) == ("ann", "admin", 3)


def _none_token() -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(_claims(role='admin'))}."


def _tampered_role() -> str:
    head, _body, sig = _forge(_claims()).split(".")
    body = base64.urlsafe_b64encode(json.dumps(_claims(role="admin")).encode()).rstrip(b"=").decode()
    return f"{head}.{body}.{sig}"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param(lambda: _forge(_claims(exp=int(time.time()) - 3600)), "expired", id="expired"),
        pytest.param(lambda: _forge(_claims(), key="x" * 40), "Signature", id="forged"),
        pytest.param(lambda: _forge(_claims(iss="someone-else")), "issuer", id="wrong-issuer"),
        pytest.param(lambda: _forge(_claims(aud="other")), "audience", id="wrong-audience"),
        pytest.param(_none_token, "algorithm", id="alg-none"),
        pytest.param(lambda: _forge(_claims(), alg="HS512"), "algorithm", id="other-algorithm"),
        pytest.param(_tampered_role, "Signature", id="role-tampered"),
        pytest.param(lambda: _forge(_claims(typ="refresh")), "not a access", id="refresh-as-access"),
        pytest.param(lambda: _forge(_claims(jti=None)), "jti", id="no-jti"),
        pytest.param(lambda: _forge(_claims(role="root")), "malformed", id="unknown-role"),
        pytest.param(lambda: "not.a.token", "token refused", id="garbage"),
    ],
)
def test_bad_tokens_refused(token, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError, match=reason):
        TokenIssuer(AUTH).verify(token())


def test_issuer_needs_a_long_secret() -> None:
    with pytest.raises(ValueError, match="required"):
        TokenIssuer(AuthSettings())
    with pytest.raises(ValueError, match="32"):
        TokenIssuer(AuthSettings(jwt_secret=Secret("short")))


# -- settings ------------------------------------------------------------------------------------------------


def test_settings_from_env_file_and_secret_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("s3cret-from-a-file\n")
    (tmp_path / "odin-http.toml").write_text('[auth]\naccess_ttl_s = 60\nissuer = "from-file"\n[server]\nport = 1\n')
    env = {
        "ODIN_HTTP_CONFIG": str(tmp_path / "odin-http.toml"),
        "ODIN_HTTP_AUTH_JWT_SECRET_FILE": str(tmp_path / "key"),
        "ODIN_HTTP_AUTH_ISSUER": "from-env",
        "ODIN_HTTP_SERVER_PUBLIC_READS": "false",
        "ODIN_HTTP_GIT_ROOT": str(tmp_path),
    }
    s = Settings.from_env(env)
    assert s.auth.jwt_secret.reveal() == "s3cret-from-a-file"
    assert (s.auth.issuer, s.auth.access_ttl_s, s.server.port) == ("from-env", 60, 1)
    assert s.server.public_reads is False and s.git.root == tmp_path
    assert "s3cret" not in repr(s)  # secrets never print


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ODIN_HTTP_SERVER_PORT": "http"}, "ODIN_HTTP_SERVER_PORT"),
        ({"ODIN_HTTP_SERVER_PUBLIC_READS": "maybe"}, "PUBLIC_READS"),
        ({"ODIN_HTTP_AUTH_JWT_SECRET_FILE": "/nonexistent/key"}, "cannot read"),
    ],
)
def test_bad_settings_say_which(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[auth]\nacces_ttl_s = 5\n")
    with pytest.raises(ValueError, match="acces_ttl_s"):
        Settings.from_env({"ODIN_HTTP_CONFIG": str(tmp_path / "c.toml")})


def test_docs_hold_the_generated_settings_reference() -> None:
    """docs/gateway.md embeds `odin-http settings --markdown` between markers: regenerate it when settings change."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "gateway.md").read_text()
    start, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    assert doc[doc.index(start) + len(start) : doc.index(end)].strip() == markdown().strip(), (
        "docs/gateway.md is stale: run `python tools/http_docs.py`"
    )


# -- templates, throttle, errors, wire -------------------------------------------------------------------------


def test_templates_render_with_the_context() -> None:
    files = {"main.yml.jinja2": b"name: x\ntasks:\n  - {name: t, image: '{{ image }}', command: echo}\n", "a": b"x"}
    assert render(files, {"image": "busybox:1"}) == {
        "main.yml": b"name: x\ntasks:\n  - {name: t, image: 'busybox:1', command: echo}\n"
    }


@pytest.mark.parametrize(
    ("template", "message"),
    [
        pytest.param("{{ missing }}", "undefined", id="undefined"),
        pytest.param("{{ ''.__class__.__mro__ }}", "undefined|sandbox", id="dunder"),
        pytest.param("{{ x.__init__.__globals__ }}", "undefined|sandbox", id="globals"),
        pytest.param("{% for %}", "main.yml.jinja2:1", id="syntax"),
        pytest.param("{{ cfg.update({'a': 1}) }}", "sandbox", id="mutation"),
    ],
)
def test_templates_are_sandboxed(template: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        render({"main.yml.jinja2": template.encode()}, {"x": 1, "cfg": {}})


def test_context_must_be_a_small_object() -> None:
    with pytest.raises(InvalidRequest):
        check_context([1])
    with pytest.raises(InvalidRequest):
        check_context({"big": "x" * 100_000})


@pytest.mark.parametrize(
    ("failures", "ago", "expected"),
    [(4, 0, 0.0), (5, 0, 1.0), (6, 0, 2.0), (7, 0.5, 3.5), (30, 0, 900.0), (9, 1000, 0.0)],
)
def test_failed_logins_back_off(failures: int, ago: float, expected: float) -> None:
    assert retry_after(failures, 100.0 - ago, 100.0, AuthSettings()) == pytest.approx(expected)


def test_every_error_code_has_a_status() -> None:
    assert status_of(AuthError("x")) == 401 and STATUS_BY_CODE["invalid_pipeline"] == 422
    assert error_body(InvalidRequest("bad", field="f")) == {
        "error": {"code": "invalid_request", "message": "bad", "details": {"field": "f"}}
    }


def test_wire_names() -> None:
    assert camel("resource_type") == "resourceType" and snake("numGpus") == "num_gpus"
    assert snake_keys({"pipeline": {"numGpus": 1, "pull_policy": "x"}}) == {
        "pipeline": {"num_gpus": 1, "pull_policy": "x"}
    }

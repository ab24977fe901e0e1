"""docs/operations.md's configuration reference is the one the code generates (tools/images/config_reference.py),
and the generator finds what it claims: every variable of the core changes the setting it is listed for, and
docker-compose.yml documents exactly the variables it uses."""

from __future__ import annotations

from deploy_support import TOOLS, load_module

ref = load_module("odin_images_config_reference", TOOLS / "config_reference.py")


def test_the_reference_in_the_page_is_current() -> None:
    assert ref.current() == ref.reference(), (
        "docs/operations.md is stale: run `.venv/bin/python tools/images/config_reference.py --write`"
    )


def test_every_core_variable_is_found_and_sets_its_setting() -> None:
    from odin_core.settings import Settings

    found = ref.core_variables()
    for name in ("ODIN_HOME", "ODIN_STORE", "ODIN_EXECUTOR", "ODIN_NAMESPACE", "ODIN_K8S_QPS", "ODIN_HEARTBEAT_S",
                 "ODIN_STORE_PASSWORD_FILE", "ODIN_LOCAL_PASS_ENV", "ODIN_K8S_CAPTURE_LOGS"):  # fmt: skip
        assert name in found, f"{name} is not found among the variables Settings.from_env reads"
    assert found["ODIN_K8S_QPS"] == "kubernetes.qps" and found["ODIN_STORE"] == "store_url"
    defaults = ref.flatten(Settings.from_env({}))
    for name, path in found.items():
        changed = any(
            ref.flatten(Settings.from_env({name: probe}))[path][0] != defaults[path][0]
            for probe in ref.PROBES
            if _builds(Settings, name, probe)
        )
        assert changed, f"{name} does not change {path}"


def _builds(settings: type, name: str, probe: str) -> bool:
    try:
        settings.from_env({name: probe})  # type: ignore[attr-defined]
    except (ValueError, TypeError):
        return False
    return True


def test_every_setting_field_has_a_row() -> None:
    from odin_core.settings import Settings

    rows = "\n".join(ref.core_settings_table())
    for path in ref.flatten(Settings()):
        assert f"| `{path}` |" in rows


def test_compose_documents_exactly_the_variables_it_uses() -> None:
    _, documented, used = ref.compose_variables()
    assert documented == used, f"undocumented: {sorted(used - documented)}, unused: {sorted(documented - used)}"

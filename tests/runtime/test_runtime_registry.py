"""The intent registry: @intent validation, discovery, duplicate names, published JSON Schema."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from harness import IntentdProcess, IntentdStartError
from pydantic import BaseModel, Field
from runtime_support import runtime_env

from intentd.config import load_settings
from intentd.runtime.context import IntentContext
from intentd.runtime.registry import (
    ENTRY_POINT_GROUP,
    RegistryError,
    RetryPolicy,
    discover,
    intent,
)


class Params(BaseModel):
    text: str = Field(min_length=1, description="Some text")
    times: int = Field(default=1, ge=1, le=10)


class Result(BaseModel):
    text: str


MODULE_TEMPLATE = """
from pydantic import BaseModel
from intentd.runtime.context import IntentContext
from intentd.runtime.registry import intent


class P(BaseModel):
    value: int


@intent({name!r}, description="declared by {module}")
async def handler(ctx: IntentContext, params: P) -> P:
    return params
"""


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write an importable module declaring one intent; returns the module's (unique) name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(intent_name: str) -> str:
        module = f"intents_{secrets.token_hex(4)}"
        (tmp_path / f"{module}.py").write_text(MODULE_TEMPLATE.format(name=intent_name, module=module))
        return module

    return make


# --- the decorator --------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "with space", "trailing.", ".leading", "a..b", "1digit", "dash-ed"])
def test_invalid_intent_names_are_refused(name: str) -> None:
    with pytest.raises(RegistryError, match="invalid intent name"):
        intent(name, description="x")


def test_handler_must_be_async() -> None:
    def sync_handler(ctx: IntentContext, params: Params) -> Result:  # pragma: no cover - never runs
        return Result(text=params.text)

    with pytest.raises(RegistryError, match="async"):
        intent("unit.sync", description="x")(sync_handler)


def test_handler_takes_ctx_and_params() -> None:
    async def one_argument(params: Params) -> Result:  # pragma: no cover - never runs
        return Result(text=params.text)

    with pytest.raises(RegistryError, match=r"\(ctx, params\)"):
        intent("unit.arity", description="x")(one_argument)


def test_params_must_be_a_pydantic_model() -> None:
    async def untyped(ctx: IntentContext, params: dict) -> Result:  # pragma: no cover - never runs
        return Result(text="")

    with pytest.raises(RegistryError, match="Pydantic model"):
        intent("unit.untyped", description="x")(untyped)


def test_decorator_publishes_schemas_and_policy(make_module) -> None:
    module = make_module("unit.schema")
    registry = discover([module], entry_point_group="intentd.none")
    spec = registry.get("unit.schema")
    assert spec is not None and spec.module == module
    described = spec.describe()
    assert described["name"] == "unit.schema"
    assert described["description"] == f"declared by {module}"
    assert described["params_schema"]["properties"]["value"]["type"] == "integer"
    assert described["params_schema"]["required"] == ["value"]
    assert described["result_schema"]["properties"]["value"]["type"] == "integer"
    assert described["retry"] == {"attempts": 1, "interval": 0.5, "backoff": 2.0}
    assert described["timeout"] is None


def test_examples_retry_and_timeout_are_described() -> None:
    async def handler(ctx: IntentContext, params: Params) -> Result:  # pragma: no cover - never runs
        return Result(text=params.text)

    name = f"unit.described_{secrets.token_hex(4)}"
    decorated = intent(
        name,
        description="Repeat a text",
        examples=["repeat hello", "say it twice"],
        retry=RetryPolicy(attempts=3, interval=0.1, backoff=4.0),
        timeout=2.5,
    )(handler)
    assert decorated is handler  # the decorator leaves the function callable as is
    registry = discover([__name__], entry_point_group="intentd.none")
    described = registry.get(name).describe()
    assert described["examples"] == ["repeat hello", "say it twice"]
    assert described["retry"] == {"attempts": 3, "interval": 0.1, "backoff": 4.0}
    assert described["timeout"] == 2.5
    assert described["params_schema"] == Params.model_json_schema()
    assert described["params_schema"]["properties"]["times"]["maximum"] == 10
    assert described["result_schema"] == Result.model_json_schema()


# --- discovery ----------------------------------------------------------------------


def test_builtin_intents_come_from_the_entry_point_group() -> None:
    names = {spec.name for spec in discover().specs()}
    assert {"echo", "wait", "text.stats"} <= names
    assert "agent.turn" not in names, "hidden intents are not listed by default"
    assert "agent.turn" in {spec.name for spec in discover().specs(include_hidden=True)}


def test_wait_schema_caps_seconds() -> None:
    wait = discover().get("wait")
    assert wait is not None
    seconds = wait.describe()["params_schema"]["properties"]["seconds"]
    assert seconds["maximum"] == 3600 and seconds["minimum"] == 0


def test_discovery_from_a_custom_entry_point(tmp_path: Path, make_module, monkeypatch: pytest.MonkeyPatch) -> None:
    module = make_module("unit.plugin")
    dist = tmp_path / "intentd_unit_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: intentd-unit-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nplugin = {module}\n")
    registry = discover()  # nothing named: the installed entry points only
    spec = registry.get("unit.plugin")
    assert spec is not None and spec.module == module
    assert registry.get("echo") is not None


def test_discovery_from_configured_modules(make_module) -> None:
    first, second = make_module("unit.first"), make_module("unit.second")
    settings = load_settings({"INTENTD_INTENT_MODULES": f" {first}, {second} "})
    assert settings.intent_modules == (first, second)
    registry = discover(settings.intent_modules)
    assert registry.get("unit.first").module == first
    assert registry.get("unit.second").module == second


def test_a_name_registered_twice_names_both_modules(make_module) -> None:
    first, second = make_module("unit.twice"), make_module("unit.twice")
    with pytest.raises(RegistryError) as raised:
        discover([first, second], entry_point_group="intentd.none")
    message = str(raised.value)
    assert "unit.twice" in message and first in message and second in message


def test_a_builtin_name_taken_again_names_both_modules(make_module) -> None:
    clash = make_module("echo")
    with pytest.raises(RegistryError) as raised:
        discover([clash])
    assert "intentd.runtime.builtin" in str(raised.value) and clash in str(raised.value)


def test_a_missing_module_is_a_clear_error() -> None:
    with pytest.raises(RegistryError, match="cannot import intent module 'no_such_intents_module'"):
        discover(["no_such_intents_module"], entry_point_group="intentd.none")


def test_the_server_refuses_to_start_on_a_duplicate_name(tmp_path: Path) -> None:
    """A name registered twice is a startup error of the real server, naming both modules."""
    for module in ("dup_one", "dup_two"):
        (tmp_path / f"{module}.py").write_text(MODULE_TEMPLATE.format(name="dup.same", module=module))
    env = runtime_env(modules_path=tmp_path, INTENTD_INTENT_MODULES="dup_one,dup_two")
    process = IntentdProcess(
        ["serve", "runtime", "--data-dir", str(tmp_path / "data")],
        env=env,
        cwd=tmp_path,
        log_path=tmp_path / "dup.log",
    )
    try:
        with pytest.raises(IntentdStartError) as raised:
            process.start(timeout=60)
        assert process.proc is not None and process.proc.returncode not in (None, 0)
        assert "dup_one" in str(raised.value) and "dup_two" in str(raised.value), process.log_text()
        assert "dup.same" in process.log_text()
    finally:
        process.stop()

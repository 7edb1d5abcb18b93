"""Keep the documentation honest: every check reads the code the docs describe.

Run ``python tests/test_docs.py`` to print the settings table of
docs/configuration.md (name, type, default) as the code defines it today.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
import types
import typing
import uuid
from pathlib import Path
from typing import Any

import pytest

from intentd.client import AgentSocket, AsyncClient
from intentd.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PROTOCOL = DOCS / "protocol.md"
ARCHITECTURE = DOCS / "architecture.md"
SRC = ROOT / "src" / "intentd"
SOCKET_SOURCE = SRC / "experience" / "socket.py"
LIMITS_SOURCE = SRC / "experience" / "limits.py"
HUB_SOURCE = SRC / "experience" / "hub.py"

ENV_NAME = re.compile(r"\bINTENTD_[A-Z0-9_]*[A-Z0-9]\b")
SETTING_ROW = re.compile(r"^\| `INTENTD_([A-Z0-9_]+)` \| (.*?) \| (.*?) \| (.*) \|$", re.MULTILINE)
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


# -- helpers --------------------------------------------------------------------


def type_cell(annotation: Any) -> str:
    """How docs/configuration.md spells a setting's type."""
    optional = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
    if typing.get_origin(annotation) is tuple:
        text = "list of strings"
    elif typing.get_origin(annotation) is typing.Literal:
        text = " or ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    else:
        text = {Path: "path", str: "string", bool: "bool", int: "int", float: "float"}[annotation]
    return f"{text}, optional" if optional else text


def default_cell(value: Any) -> str:
    """How docs/configuration.md spells a setting's default."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{','.join(value)}`" if value else "empty"
    return f"`{value}`"


def section(text: str, heading: str) -> str:
    """The body of the markdown section whose heading line is ``heading``, up to the next heading of its level."""
    level = heading.split(" ", 1)[0]
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(rf"^#{{1,{len(level)}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


def cli_envvars() -> set[str]:
    """The environment variables the `intentd` command's options read (``envvar=`` in src/intentd/cli)."""
    found: set[str] = set()
    for source in (SRC / "cli").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "envvar" and isinstance(node.value, ast.Constant):
                found.add(node.value.value)
    return found


def compose_variables() -> set[str]:
    """The ${INTENTD_...} variables the rendered docker compose file asks the operator for."""
    return set(re.findall(r"\$\{(INTENTD_[A-Z0-9_]+)", (SRC / "gateway" / "render.py").read_text()))


def _string_arg(call: ast.Call, index: int) -> str | None:
    if len(call.args) > index and isinstance(call.args[index], ast.Constant) and isinstance(call.args[index].value, str):
        return call.args[index].value
    return None


def socket_error_codes() -> set[str]:
    """Every `error` code the sockets send: SocketError(code, ...), close(..., error_code), {"code": ...},
    and the SocketRefusal codes of the socket limits."""
    codes: set[str] = set()
    for node in ast.walk(ast.parse(SOCKET_SOURCE.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "SocketError":
                codes.add(_string_arg(node, 0) or "")
            elif isinstance(func, ast.Attribute) and func.attr == "close" and len(node.args) >= 3:
                codes.add(_string_arg(node, 2) or "")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "code" and isinstance(value, ast.Constant):
                    codes.add(value.value)
    for node in ast.walk(ast.parse(LIMITS_SOURCE.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "SocketRefusal":
            codes.add(_string_arg(node, 0) or "")
    codes.discard("")
    return codes


def socket_close_codes() -> set[int]:
    """Every close code the sockets use: the CLOSE_* constants, literal codes, the refusals' codes."""
    found: set[int] = set()
    for source in (SOCKET_SOURCE, HUB_SOURCE):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.startswith("CLOSE_") for t in node.targets
            ):
                found.add(node.value.value)  # type: ignore[attr-defined]
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "close"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, int)
            ):
                found.add(node.args[0].value)
    for node in ast.walk(ast.parse(LIMITS_SOURCE.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "SocketRefusal":
            found.add(node.args[2].value)  # type: ignore[attr-defined]
    return found


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a markdown text (also indented ones, in lists), dedented."""
    return [
        textwrap.dedent(re.sub(rf"^{indent}", "", body, flags=re.MULTILINE))
        for indent, body in re.findall(r"^( *)```python\n(.*?)^\1```", text, re.MULTILINE | re.DOTALL)
    ]


def documented_docs() -> dict[Path, str]:
    return {path: path.read_text() for path in [README, *sorted(DOCS.glob("*.md"))]}


# -- configuration ----------------------------------------------------------------


def test_every_setting_is_documented_with_its_type_and_default() -> None:
    rows = {name.lower(): (kind, default) for name, kind, default, _ in SETTING_ROW.findall(CONFIGURATION.read_text())}
    fields = Settings.model_fields
    assert sorted(rows) == sorted(fields), "docs/configuration.md must list exactly the Settings fields"
    for name, field in fields.items():
        assert rows[name] == (type_cell(field.annotation), default_cell(field.default)), f"INTENTD_{name.upper()}"


def test_every_documented_variable_exists() -> None:
    known = {f"INTENTD_{name.upper()}" for name in Settings.model_fields} | {"INTENTD_CONFIG"}
    known |= cli_envvars() | compose_variables()
    for path, text in documented_docs().items():
        unknown = sorted(set(ENV_NAME.findall(text)) - known)
        assert not unknown, f"{path.relative_to(ROOT)} mentions variables intentd does not read: {unknown}"


def test_variables_that_are_not_settings_are_documented_too() -> None:
    text = CONFIGURATION.read_text()
    for name in sorted(cli_envvars() | compose_variables() | {"INTENTD_CONFIG"}):
        assert f"`{name}`" in text, name


def test_refused_values_in_distributed_mode_are_the_ones_the_code_refuses() -> None:
    refused = section(CONFIGURATION.read_text(), "## Refused in distributed mode")
    assert "INTENTD_SECRET_KEY" in refused and "INTENTD_SERVICE_TOKEN" in refused and "16 characters" in refused
    postgres = "postgresql://db/intentd"
    with pytest.raises(ConfigError, match="INTENTD_SECRET_KEY"):
        Settings(database_url=postgres).require_safe_secrets()
    with pytest.raises(ConfigError, match="INTENTD_SERVICE_TOKEN"):
        Settings(database_url=postgres, secret_key="k" * 16).require_safe_secrets()
    with pytest.raises(ConfigError, match="too short"):
        Settings(database_url=postgres, secret_key="k" * 15, service_token="t" * 16).require_safe_secrets()
    Settings(database_url=postgres, secret_key="k" * 16, service_token="t" * 16).require_safe_secrets()
    Settings().require_safe_secrets()  # embedded mode keeps its development values


# -- README -------------------------------------------------------------------------


def test_quick_start_has_exactly_the_two_set_up_commands() -> None:
    quick_start = section(README.read_text(), "## Quick start")
    commands = [
        line.split("#", 1)[0].strip()
        for block in FENCE.findall(quick_start)
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert commands == ["./scripts/up", "./scripts/test"]
    for command in commands:
        script = ROOT / command
        assert script.is_file() and script.stat().st_mode & 0o111, f"{command} is not an executable script"


def test_readme_sdk_snippet_uses_the_real_sdk() -> None:
    blocks = [b for b in python_blocks(README.read_text()) if "intentd.client" in b]
    assert len(blocks) == 1, "the README has one SDK snippet"
    tree = ast.parse(blocks[0])
    import intentd.client as sdk

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "intentd.client":
            for alias in node.names:
                assert hasattr(sdk, alias.name), alias.name
    receivers = {"client": AsyncClient, "sock": AgentSocket}
    calls = [
        node.func
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in receivers
    ]
    assert calls, "the snippet calls the SDK"
    for func in calls:
        owner = receivers[func.value.id]  # type: ignore[attr-defined]
        assert callable(getattr(owner, func.attr, None)), f"{owner.__name__} has no method {func.attr}"


# -- protocol -----------------------------------------------------------------------


def test_every_socket_error_code_is_documented() -> None:
    codes = socket_error_codes()
    assert {"unauthorized", "origin_not_allowed", "invalid_message", "rate_limited"} <= codes  # the scan works
    documented = set(re.findall(r"`([a-z_]+)`", section(PROTOCOL.read_text(), "### Error codes")))
    assert not codes - documented, f"undocumented socket error codes: {sorted(codes - documented)}"


def test_every_socket_close_code_is_documented() -> None:
    codes = socket_close_codes()
    assert {4401, 4403, 1001} <= codes  # the scan works
    documented = {int(c) for c in re.findall(r"`(\d{4})`", section(PROTOCOL.read_text(), "### Close codes"))}
    assert not codes - documented, f"undocumented close codes: {sorted(codes - documented)}"


# -- architecture: the handler example runs --------------------------------------------


def test_intent_handler_example_registers(monkeypatch: pytest.MonkeyPatch) -> None:
    from intentd.runtime.registry import discover

    examples = [b for b in python_blocks(ARCHITECTURE.read_text()) if "@intent(" in b]
    assert len(examples) == 1, "docs/architecture.md has one intent handler example"
    name = f"intentd_docs_example_{uuid.uuid4().hex}"
    module = types.ModuleType(name)
    monkeypatch.setitem(sys.modules, name, module)
    # Running the documented code is the point of this test.
    exec(compile(examples[0], str(ARCHITECTURE), "exec"), module.__dict__)  # noqa: S102

    registry = discover([name], entry_point_group="intentd.docs.no-such-group")
    spec = registry.get("text.count")
    assert spec is not None and [s.name for s in registry.specs()] == ["text.count"]
    assert spec.schema["required"] == ["text"]
    assert set(spec.schema["properties"]) == {"text", "top"}
    assert spec.schema["properties"]["top"]["default"] == 3
    assert spec.result_model is not None and set(spec.result_model.model_fields) == {"words", "top"}
    assert spec.retry.attempts == 3 and spec.timeout == 60
    assert spec.params_model.model_validate({"text": "a b"}).top == 3


if __name__ == "__main__":
    for field_name, model_field in Settings.model_fields.items():
        print(
            f"| `INTENTD_{field_name.upper()}` | {type_cell(model_field.annotation)} "
            f"| {default_cell(model_field.default)} | |"
        )

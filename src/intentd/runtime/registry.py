"""Intent registration (``@intent``) and discovery.

A handler is ``async def handler(ctx: IntentContext, params: P) -> R`` where P
and R are Pydantic models. Modules register intents when imported; the
runtime imports the modules named in ``INTENTD_INTENT_MODULES`` and those of
the ``intentd.intents`` entry-point group.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
ENTRY_POINT_GROUP = "intentd.intents"


class RegistryError(Exception):
    """An intent cannot be registered or discovered."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failing step is retried: ``attempts`` in all, waits growing by ``backoff``."""

    attempts: int = 1
    interval: float = 0.5
    backoff: float = 2.0


@dataclass(frozen=True)
class IntentSpec:
    name: str
    handler: Callable[..., Awaitable[Any]]
    params_model: type[BaseModel]
    result_model: type[BaseModel] | None
    description: str
    examples: tuple[str, ...]
    retry: RetryPolicy
    timeout: float | None
    module: str
    hidden: bool = False  # internal intents (agent turns) are not listed to users
    schema: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "examples": list(self.examples),
            "params_schema": self.schema,
            "result_schema": self.result_model.model_json_schema() if self.result_model else None,
            "timeout": self.timeout,
            "retry": {"attempts": self.retry.attempts, "interval": self.retry.interval, "backoff": self.retry.backoff},
        }


class Registry:
    def __init__(self) -> None:
        self._specs: dict[str, IntentSpec] = {}

    def add(self, spec: IntentSpec) -> None:
        existing = self._specs.get(spec.name)
        if existing is not None and existing.handler is not spec.handler:
            raise RegistryError(
                f"intent {spec.name!r} is registered twice: in {existing.module} and in {spec.module}"
            )
        self._specs[spec.name] = spec

    def get(self, name: str) -> IntentSpec | None:
        return self._specs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def specs(self, *, include_hidden: bool = False) -> list[IntentSpec]:
        return sorted(
            (s for s in self._specs.values() if include_hidden or not s.hidden), key=lambda s: s.name
        )


# Intents declared with @intent land here when their module is imported; a
# runtime copies the ones it was configured to load into its own Registry.
_declared: dict[str, list[IntentSpec]] = {}

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


def intent(
    name: str,
    *,
    description: str,
    examples: Iterable[str] = (),
    retry: RetryPolicy | None = None,
    timeout: float | None = None,
    hidden: bool = False,
) -> Callable[[H], H]:
    """Declare an intent handler."""
    if not NAME_PATTERN.match(name):
        raise RegistryError(f"invalid intent name {name!r}: use dotted lowercase words")

    def decorate(handler: H) -> H:
        if not inspect.iscoroutinefunction(handler):
            raise RegistryError(f"intent {name!r}: the handler must be an async function")
        hints = get_type_hints(handler)
        parameters = list(inspect.signature(handler).parameters)
        if len(parameters) != 2:
            raise RegistryError(f"intent {name!r}: the handler takes (ctx, params)")
        params_model = hints.get(parameters[1])
        if not (inspect.isclass(params_model) and issubclass(params_model, BaseModel)):
            raise RegistryError(f"intent {name!r}: params must be annotated with a Pydantic model")
        result_model = hints.get("return")
        if not (inspect.isclass(result_model) and issubclass(result_model, BaseModel)):
            result_model = None
        spec = IntentSpec(
            name=name,
            handler=handler,
            params_model=params_model,
            result_model=result_model,
            description=description,
            examples=tuple(examples),
            retry=retry or RetryPolicy(),
            timeout=timeout,
            module=handler.__module__,
            hidden=hidden,
            schema=params_model.model_json_schema(),
        )
        _declared.setdefault(handler.__module__, []).append(spec)
        return handler

    return decorate


def discover(modules: Iterable[str] = (), *, entry_point_group: str = ENTRY_POINT_GROUP) -> Registry:
    """A registry of the intents of ``modules`` and of the entry-point group."""
    names = list(dict.fromkeys([*(ep.value for ep in entry_points(group=entry_point_group)), *modules]))
    registry = Registry()
    for module_name in names:
        try:
            importlib.import_module(module_name)
        except ImportError as exc:
            raise RegistryError(f"cannot import intent module {module_name!r}: {exc}") from exc
        for spec in _declared.get(module_name, ()):
            registry.add(spec)
    return registry

"""The default agent's reading of commands and plain language.

The runtime is replaced by a small context object with the documented
IntentContext methods, backed by the real intent registry (built-ins plus
agent_demo_intents) and its real parameter validation; started intents are
recorded and answered with a canned outcome. End-to-end behaviour through
`intentd up` is in test_agent_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from intentd.agents.base import Turn
from intentd.agents.default import (
    DefaultAgent,
    extract_params,
    parse_arguments,
    rank,
    split_payload,
    stem,
)
from intentd.runtime.context import Cancelled
from intentd.runtime.registry import Registry, discover


class FakeHandle:
    def __init__(self, execution_id: str, outcome: dict[str, Any]) -> None:
        self.execution_id = execution_id
        self._outcome = outcome

    async def result(self) -> dict[str, Any]:
        return self._outcome


class FakeContext:
    def __init__(self, registry: Registry, outcome: dict[str, Any] | None = None) -> None:
        self.registry = registry
        self.execution_id = "turn-1"
        self.session_id = "session-1"
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.outcome = outcome or {"status": "completed", "result": {"words": 4}, "error": None}
        self.cancelled = False

    async def step(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        return await value if hasattr(value, "__await__") else value

    async def emit(self, type: str, data: dict[str, Any]) -> None:
        self.events.append((type, data))

    async def start_child(self, intent: str, params: dict[str, Any]) -> FakeHandle:
        self.started.append((intent, params))
        return FakeHandle(f"child-{len(self.started)}", self.outcome)

    def intents(self) -> list[dict[str, Any]]:
        return [spec.describe() for spec in self.registry.specs()]

    def validate(self, intent: str, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        spec = self.registry.get(intent)
        if spec is None:
            return [{"loc": ["intent"], "type": "unknown_intent", "msg": "unknown"}]
        try:
            spec.params_model.model_validate(params)
        except ValidationError as exc:
            return [{"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()]
        return None

    async def session_context(self) -> dict[str, Any]:
        return {}

    async def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return discover(["agent_demo_intents"])


async def respond(registry: Registry, text: str, **kwargs: Any) -> tuple[Turn, FakeContext]:
    ctx = FakeContext(registry, **kwargs)
    turn = Turn(ctx=ctx, text=text, turn_id=ctx.execution_id)
    await DefaultAgent().respond(turn)
    return turn, ctx


async def test_help_lists_the_visible_intents_with_their_descriptions(registry: Registry) -> None:
    turn, ctx = await respond(registry, "/help")
    for spec in registry.specs():
        assert f"/{spec.name}: {spec.description}" in turn.reply
    assert "agent.turn" not in turn.reply
    assert ctx.started == []


async def test_help_for_one_intent_shows_its_parameters(registry: Registry) -> None:
    turn, _ = await respond(registry, "/help wait")
    assert "/wait seconds=<number>" in turn.reply


async def test_everything_said_is_streamed_as_deltas_of_the_turn(registry: Registry) -> None:
    turn, ctx = await respond(registry, "/help")
    deltas = [data for kind, data in ctx.events if kind == "agent.delta"]
    assert len(deltas) > 1
    assert all(data["turn_id"] == "turn-1" for data in deltas)
    assert "".join(data["text"] for data in deltas) == turn.reply


async def test_rest_of_line_fills_the_single_free_text_parameter(registry: Registry) -> None:
    turn, ctx = await respond(registry, "/text.stats hello brave new world")
    assert ctx.started == [("text.stats", {"text": "hello brave new world"})]
    assert turn.executions == ["child-1"]
    assert "`text.stats` completed: words: 4" in turn.reply


@pytest.mark.parametrize(
    ("line", "params"),
    [
        ("/wait seconds=2", {"seconds": 2}),
        ("/wait 2.5", {"seconds": 2.5}),
        ('/text.stats text="a b c" top=2', {"text": "a b c", "top": 2}),
        ("/text.stats x=1 is a formula", {"text": "x=1 is a formula"}),
        ("/text.stats 42", {"text": "42"}),
        ("/echo message=123 tags=[1,2] flag=true", {"message": "123", "tags": [1, 2], "flag": True}),
    ],
)
async def test_command_arguments(registry: Registry, line: str, params: dict[str, Any]) -> None:
    _, ctx = await respond(registry, line)
    assert ctx.started == [(line[1:].split(" ")[0], params)]


async def test_invalid_arguments_are_explained_and_nothing_runs(registry: Registry) -> None:
    turn, ctx = await respond(registry, "/wait seconds=-3")
    assert ctx.started == []
    assert "I can't run `wait`" in turn.reply
    assert "seconds" in turn.reply and "greater than or equal to 0" in turn.reply
    assert "Usage: /wait seconds=<number>" in turn.reply


async def test_unknown_command_suggests_the_closest_intent(registry: Registry) -> None:
    turn, ctx = await respond(registry, "/wiat 3")
    assert ctx.started == []
    assert "I don't know the intent `wiat`" in turn.reply
    assert "Did you mean /wait?" in turn.reply


async def test_plain_language_runs_the_matching_intent_with_the_text_after_the_colon(registry: Registry) -> None:
    turn, ctx = await respond(registry, "count the words in: the quick brown fox")
    assert ctx.started == [("text.stats", {"text": "the quick brown fox"})]
    assert "That sounds like `text.stats`" in turn.reply


@pytest.mark.parametrize(
    ("text", "params"),
    [
        ('give me the keywords of "to be or not to be"', {"text": "to be or not to be"}),
        ("count the words in the quick brown fox", {"text": "the quick brown fox"}),
    ],
)
async def test_plain_language_finds_the_text(registry: Registry, text: str, params: dict[str, Any]) -> None:
    _, ctx = await respond(registry, text)
    assert ctx.started == [("text.stats", params)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("please wait 3 seconds", 3), ("wait 2 minutes", 120), ("sleep for 1.5 s", 1.5), ("wait 500 ms", 0.5)],
)
async def test_plain_language_reads_durations(registry: Registry, text: str, seconds: float) -> None:
    _, ctx = await respond(registry, text)
    assert ctx.started == [("wait", {"seconds": seconds})]


async def test_plain_language_without_a_needed_value_explains(registry: Registry) -> None:
    turn, ctx = await respond(registry, "wait for a while")
    assert ctx.started == []
    assert "That sounds like `wait`" in turn.reply
    assert "seconds: Field required" in turn.reply


async def test_two_close_candidates_make_the_agent_ask(registry: Registry) -> None:
    turn, ctx = await respond(registry, "say hello")
    assert ctx.started == []
    assert "Which one do you mean?" in turn.reply
    assert "/demo.greet_en: Say hello in English" in turn.reply
    assert "/demo.greet_fr: Say hello in French" in turn.reply


async def test_a_distinguishing_word_settles_it(registry: Registry) -> None:
    _, ctx = await respond(registry, "say hello in French")
    assert [intent for intent, _ in ctx.started] == ["demo.greet_fr"]


async def test_no_match_says_so(registry: Registry) -> None:
    turn, ctx = await respond(registry, "zzz qqq")
    assert ctx.started == []
    assert "not sure which intent" in turn.reply


async def test_failed_child_is_reported_with_its_code(registry: Registry) -> None:
    outcome = {"status": "failed", "result": None, "error": {"code": "timeout", "message": "took too long"}}
    turn, _ = await respond(registry, "/wait 1", outcome=outcome)
    assert "`wait` failed (timeout): took too long" in turn.reply


def test_parse_arguments_refuses_positional_text_for_several_parameters() -> None:
    schema = {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}
    with pytest.raises(ValueError, match="key=value"):
        parse_arguments("1 2", schema)


def test_words_are_stemmed_alike() -> None:
    assert stem("words") == stem("word")
    assert stem("counting") == stem("counted") == stem("count")
    assert stem("matches") == stem("match")
    assert stem("class") == "class"


def test_quoted_text_is_the_payload() -> None:
    assert split_payload("stats of 'hello there' please") == ("stats of  please", "hello there")


def test_rank_prefers_the_intent_sharing_rarer_words(registry: Registry) -> None:
    catalog = [spec.describe() for spec in registry.specs()]
    assert rank("top keywords", catalog)[0].name == "text.stats"
    entry = next(e for e in catalog if e["name"] == "wait")
    assert extract_params("wait 7", entry) == {"seconds": 7}


async def test_a_cancelled_turn_stops_after_its_child(registry: Registry) -> None:
    ctx = FakeContext(registry, outcome={"status": "cancelled", "result": None, "error": None})
    ctx.cancelled = True
    turn = Turn(ctx=ctx, text="/wait 30", turn_id=ctx.execution_id)
    with pytest.raises(Cancelled):
        await DefaultAgent().respond(turn)
    assert turn.executions == ["child-1"]

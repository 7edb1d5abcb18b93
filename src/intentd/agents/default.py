"""The default agent: offline and deterministic.

- ``/help`` lists the intents; ``/help <intent>`` shows one intent's parameters.
- ``/<intent> key=value ...`` runs an intent. Values are parsed as JSON when they
  parse (and the parameter is not a plain string), else kept as strings. When an
  intent has a single parameter, the rest of the line is that parameter:
  ``/text.stats some text here``, ``/wait 5``.
- Plain language is matched against each intent's name, description and
  examples (TF-IDF over stemmed words); parameters come from the sentence
  (quoted text or the text after a colon or after the words that named the
  intent; numbers, with a unit when the parameter counts seconds). When the two
  best intents score close, the agent asks instead of guessing.

Whatever it runs, it reports the outcome in its final message. Invalid
parameters are explained, never run.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from typing import Any

from intentd.agents.base import ChildOutcome, Turn

# Two intents whose scores are this close (second / best) are ambiguous.
AMBIGUITY_RATIO = 0.75
MAX_SUMMARY_FIELDS = 12
MAX_VALUE_CHARS = 200

_WORD = re.compile(r"[a-z0-9]+")
_KEY_VALUE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|\'([^\']+)\'')
_NUMBER = re.compile(r"(?<![\w.])(-?\d+(?:\.\d+)?)\s*([a-z]+)?", re.IGNORECASE)
_STOPWORDS = frozenset(
    "a an the in of on for to from with into about and or but is are be it this that these those "
    "i me my we our you your please can could would will should shall do does did run start make "
    "let us some any how many much what which who whom whose there here then than just now so also "
    "by at as if".split()
)
# Words that link an instruction to its object: "count the words IN the text".
_LINKING = frozenset("in of on for from about with into at to this these that those text".split())
_SECOND_UNITS = {
    "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
    "s": 1.0, "sec": 1.0, "secs": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
_SECONDS_NAMES = frozenset({"seconds", "secs", "duration", "delay", "timeout", "interval"})


class ArgumentError(ValueError):
    """A slash command's arguments cannot be read."""


# --- words -------------------------------------------------------------------------------------


def stem(word: str) -> str:
    """A tiny suffix stripper: enough for "words"/"word", "counting"/"count"."""
    if word.endswith("es") and len(word) > 4 and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    for suffix, keep in (("ing", 4), ("ed", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


# --- schemas -----------------------------------------------------------------------------------


def _types(prop: dict[str, Any]) -> set[str]:
    if "type" in prop:
        kind = prop["type"]
        return set(kind) if isinstance(kind, list) else {kind}
    found: set[str] = set()
    for option in prop.get("anyOf", []) + prop.get("oneOf", []):
        found |= _types(option)
    return found - {"null"}


def _is_plain_string(prop: dict[str, Any]) -> bool:
    return _types(prop) == {"string"}


def _properties(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return schema.get("properties") or {}


def free_text_parameter(schema: dict[str, Any]) -> str | None:
    """The parameter the rest of a command line fills: the only one, or the only required one."""
    props = _properties(schema)
    if len(props) == 1:
        return next(iter(props))
    required = [name for name in schema.get("required", []) if name in props]
    return required[0] if len(required) == 1 else None


def _coerce(raw: str, prop: dict[str, Any] | None) -> Any:
    if prop is not None and _is_plain_string(prop):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def usage(entry: dict[str, Any]) -> str:
    schema = entry.get("params_schema") or {}
    required = set(schema.get("required", []))
    parts = []
    for name, prop in _properties(schema).items():
        kind = "|".join(sorted(_types(prop))) or "value"
        parts.append(f"{name}=<{kind}>" if name in required else f"[{name}=<{kind}>]")
    return " ".join([f"/{entry['name']}", *parts])


# --- slash commands ----------------------------------------------------------------------------


def parse_arguments(rest: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The params of ``/<intent> <rest>``."""
    rest = rest.strip()
    if not rest:
        return {}
    props = _properties(schema)
    free = free_text_parameter(schema)
    try:
        tokens = shlex.split(rest)
    except ValueError:
        tokens = []
    if tokens and all(_KEY_VALUE.match(token) for token in tokens):
        pairs = dict(token.split("=", 1) for token in tokens)
        # "/text.stats a=b is short" is free text, but "/wait seconds=5" is a key
        if free is None or any(key in props for key in pairs):
            return {key: _coerce(value, props.get(key)) for key, value in pairs.items()}
    if free is not None:
        return {free: _coerce(rest, props[free])}
    raise ArgumentError("give the parameters as key=value pairs")


# --- plain language ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    entry: dict[str, Any]
    score: float

    @property
    def name(self) -> str:
        return str(self.entry["name"])


def _document(entry: dict[str, Any]) -> list[str]:
    name_words = str(entry["name"]).replace(".", " ").replace("_", " ")
    return terms(" ".join([name_words, name_words, entry.get("description") or "", *entry.get("examples", [])]))


def rank(instruction: str, catalog: list[dict[str, Any]]) -> list[Candidate]:
    """Intents by how well ``instruction`` matches them, best first; zero scores left out."""
    documents = [set(_document(entry)) for entry in catalog]
    frequency = Counter(term for doc in documents for term in doc)
    query = set(terms(instruction))
    scored = []
    for entry, doc in zip(catalog, documents, strict=True):
        score = sum(math.log(1 + len(catalog) / frequency[t]) for t in query & doc)
        if score > 0:
            scored.append(Candidate(entry, score))
    return sorted(scored, key=lambda c: (-c.score, c.name))


def split_payload(text: str) -> tuple[str, str | None]:
    """(instruction, payload): the payload is quoted text, or what follows a colon."""
    quoted = _QUOTED.search(text)
    if quoted:
        payload = next(group for group in quoted.groups() if group is not None)
        return text[: quoted.start()] + text[quoted.end() :], payload
    head, colon, tail = text.partition(":")
    if colon and tail.strip():
        return head, tail.strip()
    return text, None


def trailing_text(text: str, entry: dict[str, Any]) -> str | None:
    """The text after the last word that named the intent, minus linking words:
    "count the words in the quick brown fox" -> "the quick brown fox"."""
    vocabulary = set(_document(entry))
    words = list(re.finditer(r"\S+", text))
    last = -1
    for index, word in enumerate(words):
        if stem(re.sub(r"[^a-z0-9]", "", word.group().lower())) in vocabulary:
            last = index
    rest = words[last + 1 :]
    while rest and rest[0].group().lower().strip(",.;") in _LINKING:
        rest = rest[1:]
    if not rest:
        return None
    return text[rest[0].start() :].strip() or None


def extract_params(text: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Best-effort params for ``entry`` from a plain-language request."""
    schema = entry.get("params_schema") or {}
    props = _properties(schema)
    required = [name for name in schema.get("required", []) if name in props]
    ordered = required + [name for name in props if name not in required]
    instruction, payload = split_payload(text)
    params: dict[str, Any] = {}

    string_params = [name for name in ordered if _is_plain_string(props[name])]
    if string_params:
        value = payload if payload is not None else trailing_text(instruction, entry)
        if value is not None:
            params[string_params[0]] = value

    numeric_params = [name for name in ordered if _types(props[name]) & {"number", "integer"}]
    numbers = list(_NUMBER.finditer(instruction))
    for name, match in zip(numeric_params, numbers, strict=False):
        value = float(match.group(1))
        unit = (match.group(2) or "").lower()
        if name in _SECONDS_NAMES and unit in _SECOND_UNITS:
            value *= _SECOND_UNITS[unit]
        params[name] = int(value) if value.is_integer() else value  # "wait 3 s" reads as 3, not 3.0
    return params


# --- reporting ---------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def summarize(intent: str, outcome: ChildOutcome) -> str:
    status = outcome.get("status")
    if status == "completed":
        result = outcome.get("result")
        if isinstance(result, dict) and result:
            fields = [f"{key}: {_compact(value)}" for key, value in list(result.items())[:MAX_SUMMARY_FIELDS]]
            more = len(result) - MAX_SUMMARY_FIELDS
            if more > 0:
                fields.append(f"(+{more} more)")
            return f"`{intent}` completed: " + "; ".join(fields)
        return f"`{intent}` completed." if result in (None, {}) else f"`{intent}` completed: {_compact(result)}"
    if status == "cancelled":
        return f"`{intent}` was cancelled."
    error = outcome.get("error") or {}
    return f"`{intent}` failed ({error.get('code', 'error')}): {error.get('message', 'no details')}"


def describe_errors(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        if isinstance(error, dict):
            loc = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "params"
            parts.append(f"{loc}: {error.get('msg', error.get('type', 'invalid'))}")
        else:
            parts.append(str(error))
    return "; ".join(parts)


# --- the agent ---------------------------------------------------------------------------------


class DefaultAgent:
    async def respond(self, turn: Turn) -> None:
        text = turn.text.strip()
        catalog = turn.ctx.intents()
        if text.startswith("/"):
            command, _, rest = text[1:].partition(" ")
            if command in ("help", "?", ""):
                await self._help(turn, catalog, rest.strip())
            else:
                await self._command(turn, catalog, command, rest)
        else:
            await self._plain(turn, catalog, text)

    async def _help(self, turn: Turn, catalog: list[dict[str, Any]], topic: str) -> None:
        by_name = {entry["name"]: entry for entry in catalog}
        if topic:
            entry = by_name.get(topic.lstrip("/"))
            if entry is None:
                await self._unknown(turn, catalog, topic.lstrip("/"))
                return
            await turn.say(f"`{entry['name']}`: {entry.get('description') or ''}")
            await turn.say(f"Usage: {usage(entry)}")
            for example in entry.get("examples", []):
                await turn.say(f"Example: {example}")
            return
        if not catalog:
            await turn.say("No intents are available.")
            return
        await turn.say("I can run these intents:")
        for entry in catalog:
            await turn.say(f"- /{entry['name']}: {entry.get('description') or ''}")
        await turn.say(
            "Type /<intent> key=value ... (or /<intent> <text> for a single parameter), "
            "/help <intent> for its parameters, or just say what you want."
        )

    async def _unknown(self, turn: Turn, catalog: list[dict[str, Any]], name: str) -> None:
        close = difflib.get_close_matches(name, [entry["name"] for entry in catalog], n=1)
        hint = f" Did you mean /{close[0]}?" if close else ""
        await turn.say(f"I don't know the intent `{name}`.{hint} /help lists what I can run.")

    async def _command(self, turn: Turn, catalog: list[dict[str, Any]], name: str, rest: str) -> None:
        entry = next((e for e in catalog if e["name"] == name), None)
        if entry is None:
            await self._unknown(turn, catalog, name)
            return
        try:
            params = parse_arguments(rest, entry.get("params_schema") or {})
        except ArgumentError as exc:
            await turn.say(f"I can't read those arguments: {exc}. Usage: {usage(entry)}")
            return
        await self._run(turn, entry, params)

    async def _plain(self, turn: Turn, catalog: list[dict[str, Any]], text: str) -> None:
        instruction, _ = split_payload(text)
        candidates = rank(instruction, catalog)
        if not candidates:
            await turn.say("I'm not sure which intent you mean. /help lists what I can run.")
            return
        best = candidates[0]
        if len(candidates) > 1 and candidates[1].score >= AMBIGUITY_RATIO * best.score:
            close = [c for c in candidates if c.score >= AMBIGUITY_RATIO * best.score]
            await turn.say("Which one do you mean?")
            for candidate in close:
                await turn.say(f"- /{candidate.name}: {candidate.entry.get('description') or ''}")
            await turn.say("Reply with the command, for example " + usage(close[0].entry))
            return
        await turn.say(f"That sounds like `{best.name}` ({best.entry.get('description') or 'no description'}).")
        await self._run(turn, best.entry, extract_params(text, best.entry))

    async def _run(self, turn: Turn, entry: dict[str, Any], params: dict[str, Any]) -> None:
        name = entry["name"]
        errors = turn.ctx.validate(name, params)
        if errors:
            await turn.say(
                f"I can't run `{name}` with {json.dumps(params, ensure_ascii=False)}: {describe_errors(errors)}."
            )
            await turn.say(f"Usage: {usage(entry)}")
            return
        await turn.say(f"Running `{name}` with {json.dumps(params, ensure_ascii=False)}…")
        _, outcome = await turn.run_intent(name, params)
        await turn.say(summarize(name, outcome))

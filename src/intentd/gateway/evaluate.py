"""Static evaluators: which rule of a rendered gateway config wins for a request path.

They read the rendered configuration back (not the contract), so a renderer
bug shows up as a disagreement with the contract in `routes check`.

Traefik: routers sorted by priority, highest first; a router's priority is its
explicit ``priority`` or, when absent or 0, the length of its rule; the first
router whose rule matches wins. Equal priorities among matching routers are
reported as ambiguous (Traefik's order between them is not specified).
Matchers: ``Path`` (exact), ``PathPrefix`` (plain string prefix, *not*
segment-bounded), combined with ``||``, ``&&``, ``!`` and parentheses.

nginx: an exact ``location = P`` wins; otherwise the longest prefix location
(``location P`` or ``location ^~ P``). The renderer emits no regex location,
and the evaluator refuses configs that have one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from intentd.gateway.contract import PLANES, Plane

Matcher = Callable[[str], bool]


class AmbiguousMatch(ValueError):
    """Two rules of the same priority match the path."""


# --- Traefik ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\|\|)|(&&)|(!)|(\()|(\))|(,)|`([^`]*)`|([A-Za-z]+))")


def parse_traefik_rule(rule: str) -> Matcher:
    """Compile a rule (the subset the renderer uses) to a predicate on the request path."""
    tokens: list[tuple[str, str]] = []
    position = 0
    rule = rule.strip()
    while position < len(rule):
        match = _TOKEN.match(rule, position)
        if not match:
            raise ValueError(f"cannot parse rule {rule!r} at {rule[position:]!r}")
        position = match.end()
        kinds = ("or", "and", "not", "(", ")", ",", "str", "name")
        for kind, text in zip(kinds, match.groups(), strict=True):
            if text is not None:
                tokens.append((kind, text))
                break
    parser = _RuleParser(tokens, rule)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise ValueError(f"trailing tokens in rule {rule!r}")
    return predicate


class _RuleParser:
    def __init__(self, tokens: list[tuple[str, str]], rule: str) -> None:
        self.tokens = tokens
        self.rule = rule
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def _take(self, kind: str) -> str:
        if self._peek() != kind:
            raise ValueError(f"expected {kind} in rule {self.rule!r}")
        text = self.tokens[self.position][1]
        self.position += 1
        return text

    def expression(self) -> Matcher:
        terms = [self._conjunction()]
        while self._peek() == "or":
            self._take("or")
            terms.append(self._conjunction())
        return terms[0] if len(terms) == 1 else (lambda path: any(t(path) for t in terms))

    def _conjunction(self) -> Matcher:
        factors = [self._unary()]
        while self._peek() == "and":
            self._take("and")
            factors.append(self._unary())
        return factors[0] if len(factors) == 1 else (lambda path: all(f(path) for f in factors))

    def _unary(self) -> Matcher:
        if self._peek() == "not":
            self._take("not")
            inner = self._unary()
            return lambda path: not inner(path)
        if self._peek() == "(":
            self._take("(")
            inner = self.expression()
            self._take(")")
            return inner
        return self._matcher()

    def _matcher(self) -> Matcher:
        name = self._take("name")
        self._take("(")
        values = [self._take("str")]
        while self._peek() == ",":
            self._take(",")
            values.append(self._take("str"))
        self._take(")")
        if name == "Path":
            return lambda path: path in values
        if name == "PathPrefix":
            return lambda path: any(path.startswith(v) for v in values)
        raise ValueError(f"matcher {name} is not supported by the evaluator (rule {self.rule!r})")


@dataclass(frozen=True, slots=True)
class TraefikMatch:
    router: str
    service: str
    middlewares: tuple[str, ...]
    priority: int


def traefik_winner(dynamic: Mapping[str, Any], path: str, entrypoint: str = "web") -> TraefikMatch | None:
    """The router Traefik picks for ``path`` on ``entrypoint``; None: no router (Traefik's 404)."""
    matching: list[TraefikMatch] = []
    for name, router in dynamic.get("http", {}).get("routers", {}).items():
        entrypoints = router.get("entryPoints")
        if entrypoints and entrypoint not in entrypoints:
            continue
        rule = router["rule"]
        if parse_traefik_rule(rule)(path):
            priority = router.get("priority") or len(rule)
            matching.append(
                TraefikMatch(name, router["service"], tuple(router.get("middlewares", ())), priority)
            )
    if not matching:
        return None
    matching.sort(key=lambda m: -m.priority)
    if len(matching) > 1 and matching[0].priority == matching[1].priority:
        raise AmbiguousMatch(
            f"routers {matching[0].router} and {matching[1].router} both match {path} "
            f"with priority {matching[0].priority}"
        )
    return matching[0]


def traefik_target(dynamic: Mapping[str, Any], path: str, entrypoint: str = "web") -> Plane | None:
    """The plane a rendered dynamic config sends ``path`` to; None when refused or unrouted."""
    winner = traefik_winner(dynamic, path, entrypoint)
    if winner is None:
        return None
    middlewares = dynamic.get("http", {}).get("middlewares", {})
    for name in winner.middlewares:
        allow = middlewares.get(name.split("@")[0], {}).get("ipAllowList")
        if allow is not None and allow.get("sourceRange") == ["255.255.255.255/32"]:
            return None  # refuses every client
    return _plane(winner.service.split("@")[0])


def _plane(name: str) -> Plane | None:
    for plane in PLANES:
        if name == plane:
            return plane
    return None


# --- nginx ----------------------------------------------------------------------------

_LOCATION = re.compile(r"^\s*location\s+(?:(=|\^~|~\*?)\s+)?(\S+)\s*\{")
_PROXY_PASS = re.compile(r"proxy_pass\s+http://intentd_(\w+)\s*;")


@dataclass(frozen=True, slots=True)
class NginxLocation:
    modifier: str  # "=", "^~" or "" (plain prefix)
    path: str
    target: Plane | None  # None: the location answers itself (return 404)


def nginx_locations(conf: str) -> list[NginxLocation]:
    locations: list[NginxLocation] = []
    lines = conf.splitlines()
    for index, line in enumerate(lines):
        match = _LOCATION.match(line)
        if not match:
            continue
        modifier, path = match.group(1) or "", match.group(2)
        if modifier.startswith("~"):
            raise ValueError(f"regex location {path!r} is not supported by the evaluator")
        block: list[str] = []
        for body in lines[index + 1 :]:
            if body.strip() == "}":
                break
            block.append(body)
        proxy = _PROXY_PASS.search("\n".join(block))
        locations.append(NginxLocation(modifier, path, _plane(proxy.group(1)) if proxy else None))
    return locations


def nginx_winner(conf: str, path: str) -> NginxLocation | None:
    locations = nginx_locations(conf)
    for location in locations:
        if location.modifier == "=" and location.path == path:
            return location
    prefixes = [loc for loc in locations if loc.modifier != "=" and path.startswith(loc.path)]
    return max(prefixes, key=lambda loc: len(loc.path), default=None)


def nginx_target(conf: str, path: str) -> Plane | None:
    winner = nginx_winner(conf, path)
    return winner.target if winner else None

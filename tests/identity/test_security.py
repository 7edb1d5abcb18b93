"""Security headers, CORS, body size and JSON depth limits, the Origin rule (in-process app)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from intentd.asgi import json_depth_exceeds, json_has_huge_integer
from intentd.config import Settings
from intentd.experience.security import CONTENT_SECURITY_POLICY, origin_allowed

LOGIN = "/api/auth/login"


async def test_every_response_carries_the_security_headers(mini_app):
    mini = await mini_app()
    for response in (
        await mini.client.post(LOGIN, json={"email": "a@b.c", "password": "x"}),  # 401
        await mini.client.get("/no/such/path"),  # 404 from the framework
        await mini.client.post(LOGIN, content=b"x" * (2 << 20)),  # 413 from the middleware
    ):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-frame-options"] == "DENY"


async def test_cors_allows_only_listed_origins(mini_app):
    mini = await mini_app(cors_origins="https://console.example.com")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    good = await mini.client.options(LOGIN, headers={"Origin": "https://console.example.com", **preflight})
    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://console.example.com"
    assert "access-control-allow-credentials" not in good.headers
    bad = await mini.client.options(LOGIN, headers={"Origin": "https://evil.example", **preflight})
    assert bad.status_code == 400
    assert "access-control-allow-origin" not in bad.headers
    simple = await mini.client.post(LOGIN, json={"email": "a@b.c", "password": "x"}, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


async def test_declared_oversized_body_is_413(mini_app):
    mini = await mini_app(max_body_bytes=1000)
    response = await mini.client.post(LOGIN, content=b"{" + b" " * 2000 + b"}", headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert response.headers["content-type"] == "application/problem+json"


async def test_chunked_oversized_body_is_413(mini_app):
    mini = await mini_app(max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    response = await mini.client.post(LOGIN, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers  # really chunked
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


async def test_chunked_body_within_the_limit_reaches_the_route(mini_app):
    mini = await mini_app(max_body_bytes=1000)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"email": "a@example.com",'
        yield b' "password": "whatever1"}'

    response = await mini.client.post(LOGIN, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 401 and response.json()["code"] == "invalid_credentials"


async def test_deeply_nested_json_is_refused_before_parsing(mini_app):
    mini = await mini_app(max_json_depth=8)
    deep = b'{"email": ' + b"[" * 9 + b"]" * 9 + b', "password": "x"}'
    response = await mini.client.post(LOGIN, content=deep, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "json_too_deep"
    shallow = b'{"email": ' + b"[" * 7 + b"]" * 7 + b', "password": "x"}'
    response = await mini.client.post(LOGIN, content=shallow, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"


async def test_very_deep_json_does_not_crash_the_server(mini_app):
    mini = await mini_app()
    response = await mini.client.post(LOGIN, content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["code"] == "json_too_deep"


def test_json_depth_ignores_brackets_inside_strings():
    assert not json_depth_exceeds(b'{"a": "[[[[[[[[[[[[{{{{{{{{\\"]]]]"}', 2)
    assert json_depth_exceeds(b'{"a": [{"b": [1]}]}', 3)
    assert not json_depth_exceeds(b'{"a": [{"b": [1]}]}', 4)
    assert not json_depth_exceeds(b"[]" * 1000, 1)  # many, but side by side


def test_origin_rule():
    settings = Settings(cors_origins=("https://console.example.com",))
    assert origin_allowed(settings, None, "api.example.com")  # not a browser
    assert origin_allowed(settings, "https://console.example.com", "api.example.com")
    assert origin_allowed(settings, "http://127.0.0.1:8000", "127.0.0.1:8000")  # same origin
    assert origin_allowed(settings, "https://api.example.com", "api.example.com")  # behind a TLS gateway
    assert not origin_allowed(settings, "http://127.0.0.1:9000", "127.0.0.1:8000")
    assert not origin_allowed(settings, "https://evil.example", "api.example.com")
    assert not origin_allowed(settings, "https://api.example.com.evil.example", "api.example.com")
    assert not origin_allowed(settings, "null", "api.example.com")
    assert not origin_allowed(settings, "https://evil.example", None)
    assert origin_allowed(Settings(cors_origins=("*",)), "https://anywhere.example", None)


async def test_deep_json_without_a_content_type_is_refused_too(mini_app):
    """FastAPI parses a body without Content-Type as JSON: the depth limit must hold there as well."""
    mini = await mini_app()
    response = await mini.client.post(LOGIN, content=b"[" * 100_000)
    assert "content-type" not in response.request.headers
    assert response.status_code == 400 and response.json()["code"] == "json_too_deep"


async def test_integers_beyond_64_bits_are_refused_before_they_reach_a_route(mini_app):
    mini = await mini_app()
    huge = b'{"email": "a@example.com", "password": "whatever1", "n": 457528760012826214400}'
    response = await mini.client.post(LOGIN, content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["code"] == "invalid_request"
    assert response.json()["errors"][0]["type"] == "int_out_of_range"
    in_a_string = b'{"email": "457528760012826214400@example.com", "password": "whatever1"}'
    response = await mini.client.post(LOGIN, content=in_a_string, headers={"content-type": "application/json"})
    assert response.status_code == 401


def test_huge_integer_detection():
    assert json_has_huge_integer(b'[9223372036854775808]')
    assert json_has_huge_integer(b'{"a": -9223372036854775809}')
    assert not json_has_huge_integer(b'[9223372036854775807, -9223372036854775808]')
    assert not json_has_huge_integer(b'["457528760012826214400", "x\\" 457528760012826214400"]')
    assert not json_has_huge_integer(b'[457528760012826214400.5, 4575287600128262144001e3]')

"""The console's static files as `intentd up` serves them: content types, cache headers,
client-side routes, and nothing outside the static directory."""

from __future__ import annotations

import re

import httpx

from intentd.console import STATIC_DIR


def test_static_files_index_fallback_and_api_404(server):
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert index.headers["cache-control"] == "no-cache"
        assert '<script type="module" src="/js/app.js">' in index.text
        assert not re.search(r"<script>|<style|style=", index.text), "inline script or style breaks the CSP"

        script = client.get("/js/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert script.headers["x-content-type-options"] == "nosniff"
        revalidated = client.get("/js/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert revalidated.status_code == 304
        assert client.get("/css/console.css").headers["content-type"] == "text/css; charset=utf-8"
        assert client.get("/favicon.svg").headers["content-type"] == "image/svg+xml"

        for client_route in ("/admin/executions/abc", "/intents/text.stats", "/signin"):
            page = client.get(client_route)
            assert page.status_code == 200 and page.text == index.text, client_route
        assert client.get("/js/missing.js").status_code == 404
        for escape in ("/%2e%2e/__init__.py", "/js/%2e%2e/%2e%2e/__init__.py", "/js/..%2f..%2f__init__.py"):
            assert "def mount_console" not in client.get(escape).text, escape

        unknown_api = client.get("/api/no-such-thing")
        assert unknown_api.status_code == 404
        assert unknown_api.headers["content-type"] == "application/problem+json"
        assert unknown_api.json()["code"] == "not_found"


def test_every_module_is_shipped_and_logs_nothing():
    """No build step: the modules in the package are what the browser loads; none logs (tokens!)."""
    modules = list((STATIC_DIR / "js").rglob("*.js"))
    assert len(modules) >= 10
    for module in modules:
        text = module.read_text()
        assert not re.search(r"\bconsole\.(log|info|debug|warn|error)\(", text), f"{module.name} logs to the console"
        assert "innerHTML" not in text, f"{module.name} builds HTML from strings"
        for imported in re.findall(r'from "(\\.[^"]+)"', text):
            assert (module.parent / imported).resolve().is_file(), f"{module.name} imports missing {imported}"

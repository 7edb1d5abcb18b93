"""The web console: static files served at ``/`` for every path outside ``/api``.

Plain HTML, CSS and ES modules shipped inside the package (no build step, no
CDN). Unknown non-file paths get ``index.html`` so the console can route on
the client; a path that names a missing file is a plain 404, so a broken
asset link never silently turns into HTML.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path, PurePosixPath

from fastapi import FastAPI, Request
from starlette.responses import FileResponse, Response

from intentd.problems import Problem, problem_response

STATIC_DIR: Path = Path(__file__).parent / "static"
INDEX_FILE = "index.html"

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
_ASSET_SUFFIXES = frozenset({*_CONTENT_TYPES, ".map", ".woff", ".woff2", ".jpg", ".jpeg", ".gif", ".webp"})
# Files have no content hash in their names (no build step), so browsers must
# revalidate them; the ETag makes that a cheap 304.
_CACHE_CONTROL = "no-cache"


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _etag(path: Path) -> str:
    stat = path.stat()
    digest = hashlib.sha256(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:20]
    return f'"{digest}"'


def _static_file(relative: str) -> Path | None:
    """The file under STATIC_DIR that ``relative`` names, or None (never a path outside it)."""
    parts = PurePosixPath(relative).parts
    if any(part in ("..", ".") or part.startswith(".") for part in parts):
        return None
    candidate = STATIC_DIR.joinpath(*parts).resolve() if parts else None
    root = STATIC_DIR.resolve()
    if candidate is None or not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _serve(request: Request, path: Path) -> Response:
    etag = _etag(path)
    headers = {"Cache-Control": _CACHE_CONTROL, "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if etag in {tag.strip() for tag in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=_content_type(path), headers=headers)


def _looks_like_asset(relative: str) -> bool:
    """A missing /x.js is a 404; /intents/text.stats (an intent name) is a console page."""
    return PurePosixPath(relative).suffix.lower() in _ASSET_SUFFIXES


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def mount_console(app: FastAPI) -> None:
    """Serve the console for every GET/HEAD outside ``/api``; call it after all other routes."""

    async def console(request: Request, path: str = "") -> Response:
        if _is_api(request.url.path):
            return problem_response(Problem(404, "not_found", "no such API endpoint"))
        found = _static_file(path)
        if found is not None:
            return _serve(request, found)
        if _looks_like_asset(path):
            return Response("not found\n", status_code=404, media_type="text/plain; charset=utf-8")
        return _serve(request, STATIC_DIR / INDEX_FILE)

    app.add_api_route("/", console, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/{path:path}", console, methods=["GET", "HEAD"], include_in_schema=False)

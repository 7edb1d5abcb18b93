"""The SDK installs and runs alone: importing it loads nothing of the server side."""

from __future__ import annotations

import json
import subprocess
import sys

# (httpx itself may load rich for its command line; that is not the server's)
SERVER_SIDE = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "dbos",
    "uvicorn",
    "redis",
    "pydantic",
    "structlog",
    "jwt",
)


def test_importing_the_sdk_loads_no_server_module() -> None:
    probe = (
        "import json, sys, intentd.client; "
        "print(json.dumps(sorted({m.split('.')[0] if not m.startswith('intentd') else m for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    loaded = set(json.loads(done.stdout))
    assert {m for m in loaded if m.startswith("intentd")} == {
        "intentd",
        "intentd.client",
        "intentd.client.agent_socket",
        "intentd.client.errors",
        "intentd.client.http",
    }
    assert loaded.isdisjoint(SERVER_SIDE)

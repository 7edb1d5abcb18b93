"""`intentd` loads what a command needs: `chat`, `verify` and `--help` start without the servers' modules."""

from __future__ import annotations

import subprocess
import sys

# What only the servers, `intentd user`, `intentd routes check` and `intentd bench` need.
HEAVY = ("sqlalchemy", "alembic", "fastapi", "dbos", "intentd.store", "intentd.bench")


def test_the_command_line_starts_without_the_servers_modules() -> None:
    modules = subprocess.run(
        [sys.executable, "-c", "import sys, intentd.cli; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    assert "intentd.cli.user" in modules and "intentd.cli.bench" in modules  # every command is registered
    assert [m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in HEAVY)] == []

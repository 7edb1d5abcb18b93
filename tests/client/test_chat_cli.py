"""`intentd chat` in a subprocess, its input piped, against a real `intentd up`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest
from harness import UpServer

from intentd.client import AsyncClient

DEADLINE = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpServer]:
    up = UpServer(tmp_path_factory.mktemp("chat-cli") / "up")
    up.start()
    yield up
    up.stop()


def run_chat(server: UpServer, *lines: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "intentd", "chat", "--url", server.url],
        input="".join(line + "\n" for line in lines),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        # no controlling terminal: the hidden password prompt reads the pipe
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def test_chat_logs_in_and_shows_the_agent_reply(server: UpServer) -> None:
    done = run_chat(server, server.admin_email, server.admin_password, "/help", "/quit")
    assert done.returncode == 0, done.stderr
    assert "Connected to " + server.url in done.stdout
    assert "agent> I can run these intents:" in done.stdout
    assert "/text.stats: Count the words" in done.stdout
    assert server.admin_password not in done.stdout


def test_chat_shows_intent_results_and_progress(server: UpServer) -> None:
    done = run_chat(server, server.admin_email, server.admin_password, "/text.stats hello world", "wait 1 second")
    assert done.returncode == 0, done.stderr  # end of input leaves like /quit
    assert "`text.stats` completed: words: 2" in done.stdout
    assert "text.stats completed" in done.stdout  # the child's progress line
    assert "wait completed" in done.stdout
    assert "100%" in done.stdout


def test_chat_reports_a_failed_login(server: UpServer) -> None:
    done = run_chat(server, server.admin_email, "wrong password")
    assert done.returncode == 1
    assert "invalid_credentials" in done.stdout


def test_chat_joins_an_existing_session_by_token(server: UpServer) -> None:
    async def open_session() -> tuple[str, str]:
        async with AsyncClient(server.url) as client:
            await client.login(server.admin_email, server.admin_password)
            created = await client.create_session()
            return created["session_token"], created["session_id"]

    token, session_id = asyncio.run(open_session())
    done = subprocess.run(
        [sys.executable, "-m", "intentd", "chat", "--url", server.url, "--session-token", token],
        input="/help wait\n",
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert f"(session {session_id})" in done.stdout
    assert "Usage: /wait seconds=<number>" in done.stdout

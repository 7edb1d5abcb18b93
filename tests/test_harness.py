"""The test harness itself: services, ports, subprocess control, nginx and chromium."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import harness
import httpx
import psycopg
import pytest
import redis
from harness import IntentdProcess, IntentdStartError, NginxProcess, UpServer

# A stand-in for the intentd CLI: serves GET /health on --port, reports one
# INTENTD_* variable, exits 0 on SIGTERM, and exits 3 at once when told "crash".
STUB_SERVER = r"""
import http.server, os, signal, sys

args = sys.argv[1:]
print("stub starting", args, flush=True)
if "crash" in args:
    print("boom: cannot start", flush=True)
    sys.exit(3)
port = int(args[args.index("--port") + 1])

class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = repr((os.environ.get("INTENTD_GREETING"), os.environ.get("INTENTD_LEAK"))).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass

server = http.server.HTTPServer(("127.0.0.1", port), Health)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server.serve_forever()
"""


@pytest.fixture
def stub_process(tmp_path: Path) -> Iterator[Callable[..., IntentdProcess]]:
    script = tmp_path / "stub_server.py"
    script.write_text(STUB_SERVER)
    processes: list[IntentdProcess] = []

    def make(*args: str, env: dict[str, str] | None = None) -> IntentdProcess:
        process = IntentdProcess(
            list(args),
            env=env,
            cwd=tmp_path,
            log_path=tmp_path / "stub.log",
            program=[sys.executable, str(script)],
        )
        processes.append(process)
        return process

    yield make
    for process in processes:
        process.stop()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>harness page</title><p id=msg>hello from the harness</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def hello_server() -> Iterator[str]:
    """A plain HTTP server on a free port (in a thread), answering every GET with a small page."""
    server = ThreadingHTTPServer((harness.LOCALHOST, 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{harness.LOCALHOST}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_free_port_can_be_bound() -> None:
    port = harness.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind((harness.LOCALHOST, port))
        sock.listen()
        assert harness.port_open(harness.LOCALHOST, port)


@pytest.mark.parametrize("ci", ["true", ""])
def test_missing_service_fails_and_never_skips(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    closed_port = harness.free_port()  # nothing listens on it
    with pytest.raises(pytest.fail.Exception) as failure:
        harness.require_service(harness.LOCALHOST, closed_port, "PostgreSQL")
    message = str(failure.value)
    assert f"PostgreSQL is not reachable on 127.0.0.1:{closed_port}" in message
    assert ("CI=true requires it" in message) == (ci == "true")
    assert ("./scripts/test" in message) == (ci != "true")


def test_require_service_passes_for_a_listening_port() -> None:
    with socket.socket() as sock:
        sock.bind((harness.LOCALHOST, 0))
        sock.listen()
        harness.require_service(harness.LOCALHOST, sock.getsockname()[1], "anything")


def test_wait_http_returns_the_response(hello_server: str) -> None:
    response = harness.wait_http(hello_server + "/", timeout=5)
    assert "hello from the harness" in response.text


def test_wait_http_times_out_on_a_closed_port() -> None:
    with pytest.raises(TimeoutError, match="did not answer 200"):
        harness.wait_http(f"http://127.0.0.1:{harness.free_port()}/health", timeout=0.5)


def test_postgres_url_is_a_database_of_its_own(postgres_url: str) -> None:
    name = urlsplit(postgres_url).path.lstrip("/")
    assert name.startswith("intentd_t_")
    assert postgres_url == f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)


def test_fresh_postgres_url_gives_distinct_databases(
    fresh_postgres_url: Callable[[], str], postgres_url: str
) -> None:
    first, second = fresh_postgres_url(), fresh_postgres_url()
    assert len({first, second, postgres_url}) == 3
    for url in (first, second):
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (url.rsplit("/", 1)[1],)


@pytest.mark.postgres
def test_drop_database_closes_open_connections_and_drops() -> None:
    url = harness.create_database()
    name = url.rsplit("/", 1)[1]
    assert harness.database_exists(name)
    leftover = psycopg.connect(url)  # like a pool of a server that was killed
    try:
        harness.drop_database(url)
        assert not harness.database_exists(name)
    finally:
        leftover.close()


def test_redis_url_answers_ping_in_its_own_database(redis_url: str, unique_prefix: str) -> None:
    number = int(urlsplit(redis_url).path.lstrip("/"))
    assert 1 <= number <= 15
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping() is True
        key = unique_prefix + "probe"
        client.set(key, "1", ex=60)
        assert client.get(key) == b"1"
        with redis.Redis(host="127.0.0.1", port=6379, db=0) as db0:
            assert db0.get(key) is None
        client.delete(key)
    finally:
        client.close()


def test_redis_databases_are_claimed_exclusively(redis_url: str) -> None:
    ours = int(urlsplit(redis_url).path.lstrip("/"))
    number, token = harness.claim_redis_db()
    try:
        assert number != ours
    finally:
        harness.release_redis_db(number, token)


def test_process_start_kill_restart_terminate(
    stub_process: Callable[..., IntentdProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTENTD_LEAK", "from the developer's shell")
    process = stub_process("up", env={"INTENTD_GREETING": "hi"}).start()
    assert process.url == f"http://127.0.0.1:{process.port}"
    assert process.ws_url == f"ws://127.0.0.1:{process.port}"
    # Given INTENTD_* variables arrive; the shell's own do not.
    assert httpx.get(process.url + "/health").text == "('hi', None)"

    process.kill9()
    assert process.proc is not None and process.proc.returncode == -signal.SIGKILL
    assert not harness.port_open(harness.LOCALHOST, process.port)

    first_pid = process.pid
    process.restart()
    assert process.pid != first_pid
    assert httpx.get(process.url + "/health").status_code == 200

    assert process.terminate() == 0
    assert process.log_text().count("stub starting") == 2
    assert "--port" in process.log_text()


def test_up_server_runs_the_real_cli_with_a_known_admin(up_server: Callable[..., UpServer]) -> None:
    server = up_server()
    assert harness.port_open(harness.LOCALHOST, server.port)
    credentials = {"email": server.admin_email, "password": server.admin_password}
    login = httpx.post(server.url + "/api/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    assert login.json()["access_token"]

    server.kill9()
    server.restart()  # same port, same data dir: the admin is still there
    assert httpx.post(server.url + "/api/auth/login", json=credentials).status_code == 200
    assert server.terminate() == 0
    assert str(server.data_dir) in server.log_text()
    assert server.admin_password not in server.log_text()


def test_process_that_exits_early_reports_its_log(stub_process: Callable[..., IntentdProcess]) -> None:
    process = stub_process("crash")
    with pytest.raises(IntentdStartError) as error:
        process.start()
    assert "exited with 3" in str(error.value)
    assert "boom: cannot start" in str(error.value)


def test_process_refuses_a_port_someone_else_serves(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind((harness.LOCALHOST, 0))
        sock.listen()
        process = IntentdProcess(["up"], log_path=tmp_path / "x.log", port=sock.getsockname()[1])
        with pytest.raises(IntentdStartError, match="already in use"):
            process.start()
    assert process.proc is None


def test_run_intentd_runs_the_cli() -> None:
    result = harness.run_intentd(["--help"])
    assert result.returncode == 0, result.stderr
    listed = {match.group(1) for match in re.finditer(r"^\W*(\w+)\s{2,}\S", result.stdout, re.MULTILINE)}
    assert {"up", "serve", "db"} <= listed


@pytest.mark.nginx
def test_nginx_proxies_to_a_local_server(tmp_path: Path, hello_server: str) -> None:
    port = harness.free_port()
    upstream = urlsplit(hello_server).netloc
    nginx = NginxProcess(
        f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://{upstream}; }}
    }}""",
        tmp_path / "nginx",
    )
    try:
        nginx.start(wait_port=port)
        response = httpx.get(f"http://127.0.0.1:{port}/anything")
        assert response.status_code == 200
        assert "hello from the harness" in response.text
    finally:
        nginx.stop()
    assert nginx.proc is not None and nginx.proc.returncode is not None


@pytest.mark.nginx
def test_nginx_check_names_the_bad_directive(tmp_path: Path) -> None:
    nginx = NginxProcess("    no_such_directive on;", tmp_path / "nginx")
    result = nginx.check()
    assert result.returncode != 0
    assert "no_such_directive" in result.stderr


@pytest.mark.browser
def test_playwright_drives_debian_chromium(hello_server: str) -> None:
    from playwright.sync_api import sync_playwright

    assert harness.chromium_bin() == "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**harness.chromium_launch_options())
        try:
            page = browser.new_page()
            page.goto(hello_server + "/")
            assert page.title() == "harness page"
            assert page.locator("#msg").inner_text() == "hello from the harness"
        finally:
            browser.close()


REPO_ROOT = Path(__file__).resolve().parents[1]


def _run_services_script(body: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in bash with scripts/lib.sh and scripts/services.sh sourced."""
    script = f"set -euo pipefail; source scripts/lib.sh; source scripts/services.sh; {body}"
    base = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run(
        ["bash", "-c", script],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.postgres
@pytest.mark.redis
def test_test_script_starts_and_stops_throwaway_services() -> None:
    pg_port, redis_port = harness.free_port(), harness.free_port()
    result = _run_services_script(
        f"""
        PG_PORT={pg_port}; REDIS_PORT={redis_port}
        ensure_postgres; ensure_redis
        "$THROWAWAY_PG_BIN/psql" -h 127.0.0.1 -p {pg_port} -U postgres -d test \
            -Atc 'SELECT current_database()'
        redis-cli -p {redis_port} ping
        started_throwaway_services
        stop_throwaway_services
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["test", "PONG"]
    assert f"throwaway PostgreSQL on 127.0.0.1:{pg_port}" in result.stderr
    assert f"throwaway Redis on 127.0.0.1:{redis_port}" in result.stderr
    assert not harness.port_open(harness.LOCALHOST, pg_port)
    assert not harness.port_open(harness.LOCALHOST, redis_port)


def test_test_script_under_ci_refuses_to_start_services() -> None:
    port = harness.free_port()
    result = _run_services_script(f"PG_PORT={port}; ensure_postgres; echo started", CI="true")
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert f"PostgreSQL is not reachable on 127.0.0.1:{port}" in result.stderr
    assert "CI=true" in result.stderr
    assert not harness.port_open(harness.LOCALHOST, port)

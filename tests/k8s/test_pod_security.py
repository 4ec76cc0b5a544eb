"""Every pod the overlays make meets the restricted Pod Security Standard, field by field, and the house's
rules on top of it (read-only root, no service-account token, numeric user 10001, requests and limits).

The restricted profile as of Kubernetes v1.33 (the version the Namespace enforces): the baseline controls
(no host namespaces, no privileged containers, capabilities added only from the allowed list, no hostPath
volumes or host ports, default /proc mount, no unconfined seccomp or AppArmor, only safe sysctls, limited
SELinux options) plus the restricted ones (only the allowed volume types, allowPrivilegeEscalation false,
runAsNonRoot true, runAsUser not 0, seccomp RuntimeDefault or Localhost, capabilities drop ALL and add at
most NET_BIND_SERVICE).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import Doc, Overlay

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
ALLOWED_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
VOLUME_SOURCE_KEYS = frozenset({"name"})


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        *pod_spec.get("initContainers", []),
        *pod_spec.get("containers", []),
        *pod_spec.get("ephemeralContainers", []),
    ]


def restricted_violations(pod_spec: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the restricted profile; empty when it meets it."""
    found: list[str] = []
    pod_context = pod_spec.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(field):
            found.append(f"{field} is true")
    if pod_context.get("windowsOptions", {}).get("hostProcess"):
        found.append("pod windowsOptions.hostProcess is true")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - VOLUME_SOURCE_KEYS
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume['name']} is of type {sorted(kinds)}")
    for sysctl in pod_context.get("sysctls", []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not a safe one")
    _check_selinux(pod_context, "pod", found)
    _check_apparmor(pod_context, "pod", found)
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        found.append("pod seccompProfile is Unconfined")
    pod_non_root = pod_context.get("runAsNonRoot")
    if pod_context.get("runAsUser") == 0:
        found.append("pod runAsUser is 0")
    for container in containers(pod_spec):
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            found.append(f"{name}: privileged")
        if context.get("windowsOptions", {}).get("hostProcess"):
            found.append(f"{name}: windowsOptions.hostProcess is true")
        if context.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation is not false")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"{name}: capabilities do not drop ALL")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            found.append(f"{name}: capabilities add {sorted(added)}")
        if context.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount is {context.get('procMount')}")
        for port in container.get("ports", []):
            if port.get("hostPort"):
                found.append(f"{name}: hostPort {port['hostPort']}")
        non_root = context.get("runAsNonRoot", pod_non_root)
        if non_root is not True:
            found.append(f"{name}: runAsNonRoot is not true (in the container or the pod)")
        if context.get("runAsUser") == 0:
            found.append(f"{name}: runAsUser is 0")
        seccomp = (context.get("seccompProfile") or {}).get("type", pod_seccomp)
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault or Localhost")
        _check_selinux(context, name, found)
        _check_apparmor(context, name, found)
    return found


def _check_selinux(context: dict[str, Any], where: str, found: list[str]) -> None:
    options = context.get("seLinuxOptions") or {}
    if options.get("type", "") not in ALLOWED_SELINUX_TYPES:
        found.append(f"{where}: seLinuxOptions.type {options.get('type')!r}")
    if options.get("user") or options.get("role"):
        found.append(f"{where}: seLinuxOptions sets user or role")


def _check_apparmor(context: dict[str, Any], where: str, found: list[str]) -> None:
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}: appArmorProfile is Unconfined")


def house_violations(pod_spec: dict[str, Any]) -> list[str]:
    """The house's rules beyond the profile."""
    found: list[str] = []
    if pod_spec.get("automountServiceAccountToken") is not False:
        found.append("automountServiceAccountToken is not false")
    if pod_spec.get("serviceAccountName", "default") == "default":
        found.append("runs as the default service account")
    pod_context = pod_spec.get("securityContext") or {}
    tmp_volumes = {v["name"] for v in pod_spec.get("volumes", []) if "emptyDir" in v}
    for container in containers(pod_spec):
        name = container["name"]
        context = container.get("securityContext") or {}
        if context.get("readOnlyRootFilesystem") is not True:
            found.append(f"{name}: readOnlyRootFilesystem is not true")
        for field in ("runAsUser", "runAsGroup"):
            if context.get(field, pod_context.get(field)) != 10001:
                found.append(f"{name}: {field} is not 10001")
        resources = container.get("resources") or {}
        for bound in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(bound) or {}):
                    found.append(f"{name}: no {resource} {bound}")
        mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
        if mounts.get("/tmp") not in tmp_volumes:
            found.append(f"{name}: no emptyDir at /tmp")
        if "@sha256:" not in container.get("image", ""):
            found.append(f"{name}: image {container.get('image')!r} is not pinned by digest")
    return found


def pod_templates(overlay: Overlay) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{owner['kind']}/{owner['metadata']['name']}", template["spec"])
        for owner, template in overlay.pod_templates()
    ]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_pod_template_meets_the_restricted_profile(rendered: dict[str, Overlay], overlay: str) -> None:
    templates = pod_templates(rendered[overlay])
    assert len(templates) >= 9  # five Deployments and four migration Jobs at least
    problems = {name: restricted_violations(spec) for name, spec in templates}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_pod_template_keeps_the_house_rules(rendered: dict[str, Overlay], overlay: str) -> None:
    problems = {name: house_violations(spec) for name, spec in pod_templates(rendered[overlay])}
    assert {name: found for name, found in problems.items() if found} == {}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_collector_pods_meet_the_restricted_profile(rendered: dict[str, Overlay], overlay: str) -> None:
    collector = rendered[overlay].get("OpenTelemetryCollector", "otel")["spec"]
    # The operator makes the pod from these two contexts; the container is its own (otc-container).
    pod = {
        "securityContext": collector["podSecurityContext"],
        "containers": [{"name": "otc-container", "securityContext": collector["securityContext"]}],
    }
    assert restricted_violations(pod) == []
    assert collector["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_namespace_enforces_the_restricted_profile(rendered: dict[str, Overlay], overlay: str) -> None:
    labels = rendered[overlay].get("Namespace", "aldredirekt")["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "v1.33"
    namespaced = [doc for doc in rendered[overlay].docs if doc["kind"] != "Namespace"]
    assert {doc["metadata"].get("namespace") for doc in namespaced} == {"aldredirekt"}


def _case_pod(rendered: dict[str, Overlay]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(rendered[OVERLAY_NAMES[0]].get("Deployment", "case"))["spec"]
    template: dict[str, Any] = spec["template"]["spec"]
    return template


def _drop_seccomp(pod: dict[str, Any]) -> None:
    pod["securityContext"].pop("seccompProfile")
    for container in pod["containers"]:
        container["securityContext"].pop("seccompProfile")


def _allow_root(pod: dict[str, Any]) -> None:
    pod["securityContext"].pop("runAsNonRoot")
    for container in pod["containers"]:
        container["securityContext"].pop("runAsNonRoot")


def _escalate(pod: dict[str, Any]) -> None:
    pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True


def _keep_capabilities(pod: dict[str, Any]) -> None:
    pod["containers"][0]["securityContext"]["capabilities"]["drop"] = ["NET_RAW"]


def _host_network(pod: dict[str, Any]) -> None:
    pod["hostNetwork"] = True


def _host_path(pod: dict[str, Any]) -> None:
    pod["volumes"].append({"name": "host", "hostPath": {"path": "/"}})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_drop_seccomp, "seccompProfile is None"),
        (_escalate, "allowPrivilegeEscalation is not false"),
        (_keep_capabilities, "capabilities do not drop ALL"),
        (_allow_root, "runAsNonRoot is not true"),
        (_host_network, "hostNetwork is true"),
        (_host_path, "hostPath"),
    ],
)
def test_the_check_refuses_a_pod_that_breaks_the_profile(
    rendered: dict[str, Overlay], change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    pod = _case_pod(rendered)
    assert restricted_violations(pod) == []
    change(pod)
    assert any(expected in problem for problem in restricted_violations(pod))


def test_the_house_check_refuses_a_writable_root_and_a_mounted_token(rendered: dict[str, Overlay]) -> None:
    pod = _case_pod(rendered)
    pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    pod["automountServiceAccountToken"] = True
    found = house_violations(pod)
    assert "case: readOnlyRootFilesystem is not true" in found
    assert "automountServiceAccountToken is not false" in found


def service_accounts(overlay: Overlay) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in overlay.of_kind("ServiceAccount")}


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_each_workload_has_its_own_service_account_without_a_token(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    accounts = service_accounts(rendered[overlay])
    for owner, template in rendered[overlay].pod_templates():
        account = template["spec"]["serviceAccountName"]
        assert account == owner["metadata"]["labels"]["app.kubernetes.io/name"]
        assert accounts[account]["automountServiceAccountToken"] is False

"""The NetworkPolicies allow exactly the flows the design draws, and nothing else, in every overlay.

A small evaluator of the NetworkPolicy API (pod and namespace selectors with matchLabels and
matchExpressions, ipBlocks, ports with endPort): a connection is allowed when a policy selecting the
source allows it out (or none selects the source for egress) and a policy selecting the destination allows
it in (or none selects it for ingress). The namespace's default-deny selects every pod for both.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import Overlay

NAMESPACE = "aldredirekt"


@dataclass(frozen=True)
class Peer:
    name: str
    namespace: str | None = NAMESPACE  # None: outside the cluster, at `address`
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    address: str | None = None


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def peer_matches(entry: dict[str, Any], peer: Peer) -> bool:
    if "ipBlock" in entry:
        if peer.address is None:
            return False
        block = entry["ipBlock"]
        address = ipaddress.ip_address(peer.address)
        inside = address in ipaddress.ip_network(block["cidr"])
        return inside and not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if peer.namespace is None:
        return False
    namespace_labels = {"kubernetes.io/metadata.name": peer.namespace}
    if "namespaceSelector" in entry:
        if not selects(entry["namespaceSelector"], namespace_labels):
            return False
    elif peer.namespace != NAMESPACE:
        return False
    return "podSelector" not in entry or selects(entry["podSelector"], peer.labels)


def port_matches(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        if "port" not in entry:
            return True
        first = int(entry["port"])
        if first <= port <= int(entry.get("endPort", first)):
            return True
    return False


def one_side(
    policies: list[dict[str, Any]], subject: Peer, other: Peer, port: int, protocol: str, direction: str
) -> bool:
    if subject.namespace != NAMESPACE:
        return True  # not ours to restrict
    kind, peers = ("Egress", "to") if direction == "egress" else ("Ingress", "from")
    relevant = [
        p["spec"]
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and selects(p["spec"]["podSelector"], subject.labels)
    ]
    if not relevant:
        return True
    for spec in relevant:
        for rule in spec.get(direction, []) or []:
            entries = rule.get(peers)
            if (not entries or any(peer_matches(e, other) for e in entries)) and port_matches(
                rule.get("ports"), port, protocol
            ):
                return True
    return False


def allowed(overlay: Overlay, source: Peer, target: Peer, port: int, protocol: str = "TCP") -> bool:
    policies = overlay.of_kind("NetworkPolicy")
    return one_side(policies, source, target, port, protocol, "egress") and one_side(
        policies, target, source, port, protocol, "ingress"
    )


def workloads(overlay: Overlay) -> dict[str, Peer]:
    found: dict[str, Peer] = {}
    for owner, template in overlay.pod_templates():
        labels = dict(template["metadata"]["labels"])
        found[owner["metadata"]["name"]] = Peer(owner["metadata"]["name"], labels=labels)
    found["database"] = Peer(
        "database", labels={"cnpg.io/cluster": "aldredirekt-db", "cnpg.io/podRole": "instance"}
    )
    found["collector"] = Peer(
        "collector",
        labels={
            "app.kubernetes.io/component": "opentelemetry-collector",
            "app.kubernetes.io/name": "otel-collector",
        },
    )
    return found


INGRESS_CONTROLLER = Peer("ingress-controller", "ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
OPERATOR = Peer("cnpg-operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
DNS = Peer("kube-dns", "kube-system", {"k8s-app": "kube-dns"})
SERVICES = ("case", "directory", "mirror", "fees")
PORTS = {"case": 50051, "directory": 50052, "mirror": 50053, "fees": 50054, "gateway": 8080}


def expected_flows(overlay: str) -> set[tuple[str, str, int]]:
    flows = {("gateway", name, PORTS[name]) for name in SERVICES}
    flows |= {("case", "directory", 50052), ("case", "mirror", 50053), ("fees", "mirror", 50053)}
    flows |= {("fees", "case", 50051), ("ingress-controller", "gateway", 8080)}
    flows |= {(name, "database", 5432) for name in SERVICES}
    flows |= {(f"{name}-migrate", "database", 5432) for name in SERVICES}
    flows |= {(name, "collector", 4317) for name in SERVICES}
    flows |= {("cnpg-operator", "database", 8000), ("cnpg-operator", "database", 5432)}
    flows |= {("database", "database", 5432), ("database", "database", 8000)}
    if overlay == "dev":
        flows |= {("mirror", "upstreams", port) for port in range(7000, 7012)}
        flows |= {("fees", "upstreams", 7000), ("case", "smtp-sink", 2525)}
    return flows


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_only_the_designed_flows_are_allowed_inside_the_cluster(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    manifests = rendered[overlay]
    peers = {**workloads(manifests), "ingress-controller": INGRESS_CONTROLLER, "cnpg-operator": OPERATOR}
    ports = {*PORTS.values(), 5432, 8000, 4317, 2525, 8080, *range(7000, 7012), 7099}
    actual = {
        (source, target, port)
        for source, source_peer in peers.items()
        for target, target_peer in peers.items()
        for port in ports
        if NAMESPACE in (source_peer.namespace, target_peer.namespace)
        and allowed(manifests, source_peer, target_peer, port)
    }
    assert actual == expected_flows(overlay)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_pod_resolves_names_and_nothing_else_leaves_by_default(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    manifests = rendered[overlay]
    outside = Peer("somewhere", None, address="192.0.2.200")
    for peer in workloads(manifests).values():
        assert allowed(manifests, peer, DNS, 53, "UDP"), peer.name
        assert allowed(manifests, peer, DNS, 53, "TCP"), peer.name
        assert not allowed(manifests, peer, outside, 443), peer.name
        assert not allowed(manifests, peer, Peer("other-namespace-pod", "default", {}), 443), peer.name


def test_prod_reaches_its_outside_systems_only_from_the_pods_that_need_them(
    rendered: dict[str, Overlay],
) -> None:
    manifests = rendered["prod"]
    peers = workloads(manifests)
    upstream = Peer("paraply", None, address="198.51.100.10")
    relay = Peer("relay", None, address="203.0.113.25")
    identity = Peer("identity-provider", None, address="203.0.113.10")
    assert allowed(manifests, peers["mirror"], upstream, 443)
    assert not allowed(manifests, peers["gateway"], upstream, 443)
    assert not allowed(manifests, peers["case"], upstream, 443)
    assert allowed(manifests, peers["case"], relay, 587)
    assert not allowed(manifests, peers["mirror"], relay, 587)
    for name in (*SERVICES, "gateway"):
        assert allowed(manifests, peers[name], identity, 443), name
    assert not allowed(manifests, peers["case-migrate"], identity, 443)


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_ingress_exposes_only_the_api_over_tls(rendered: dict[str, Overlay], overlay: str) -> None:
    """The probes and /readyz (which names the backends and their states) stay inside the cluster."""
    ingresses = rendered[overlay].of_kind("Ingress")
    assert ingresses, "the gateway is exposed through an Ingress"
    for ingress in ingresses:
        spec = ingress["spec"]
        hosts = {rule["host"] for rule in spec["rules"]}
        assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}
        paths = [(p["path"], p["pathType"]) for rule in spec["rules"] for p in rule["http"]["paths"]]
        assert paths == [("/api/", "Prefix")]

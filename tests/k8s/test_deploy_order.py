"""The order of a deploy (components/deploy-order), in every overlay, so that a first deploy works: the
migration Jobs and the services mount the CA Secret that CloudNativePG makes only with the Cluster.

For Argo CD, by sync wave (`argocd.argoproj.io/sync-wave`, 0 when not set) in the Sync phase:
- the database (the Cluster, its Databases, the ObjectStore and ScheduledBackup, and the role Secrets if the
  manifests held any) comes before the migration Jobs, which come before the Deployments;
- the migration Jobs are Sync hooks made anew at each sync (BeforeHookCreation), not PreSync hooks (those
  run before anything is applied: on a first deploy there is no Cluster yet);
- what the Jobs need comes before them: the Namespace, their ServiceAccounts, every NetworkPolicy (all in
  one wave: the default deny must not come before what the database and its clients are allowed) and any
  ConfigMap or Secret of the manifests they use.

For kubectl, the label aldredirekt.stockholm.se/deploy-stage=database marks exactly what Argo CD puts in the
database's wave, and the runbook applies by it.

Each check is a function returning what is wrong, tried on the rendered overlays (nothing) and on copies
broken on purpose (the problem named).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import Doc, Overlay, label

WAVE = "argocd.argoproj.io/sync-wave"
HOOK = "argocd.argoproj.io/hook"
HOOK_DELETE_POLICY = "argocd.argoproj.io/hook-delete-policy"
STAGE = "aldredirekt.stockholm.se/deploy-stage"
DATABASE_GROUPS = ("postgresql.cnpg.io/", "barmancloud.cnpg.io/")
RUNBOOK = Path(__file__).resolve().parents[2] / "k8s" / "README.md"


def annotation(doc: Doc, key: str) -> str | None:
    value = (doc["metadata"].get("annotations") or {}).get(key)
    return None if value is None else str(value)


def wave(doc: Doc) -> int:
    return int(annotation(doc, WAVE) or "0")


def where(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def is_migration(doc: Doc) -> bool:
    return doc["kind"] == "Job" and label(doc, "app.kubernetes.io/component") == "migration"


def role_secrets(docs: list[Doc]) -> set[str]:
    """The Secrets the Cluster takes its roles' passwords from (made by hand: none is in the manifests)."""
    found: set[str] = set()
    for cluster in (doc for doc in docs if doc["kind"] == "Cluster"):
        spec = cluster["spec"]
        found |= {r["passwordSecret"]["name"] for r in spec.get("managed", {}).get("roles", [])}
        initdb = spec.get("bootstrap", {}).get("initdb", {})
        if "secret" in initdb:
            found.add(initdb["secret"]["name"])
    return found


def database_objects(docs: list[Doc]) -> list[Doc]:
    secrets = role_secrets(docs)
    return [
        doc
        for doc in docs
        if str(doc["apiVersion"]).startswith(DATABASE_GROUPS)
        or (doc["kind"] == "Secret" and doc["metadata"]["name"] in secrets)
    ]


def used_by(job: Doc) -> set[tuple[str, str]]:
    """(kind, name) of the ConfigMaps and Secrets the Job's pods take settings or files from."""
    spec = job["spec"]["template"]["spec"]
    found: set[tuple[str, str]] = set()
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            found.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume:
            found.add(("ConfigMap", volume["configMap"]["name"]))
        for source in volume.get("projected", {}).get("sources", []):
            for kind, key in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if key in source:
                    found.add((kind, source[key]["name"]))
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for env_source in container.get("envFrom", []):
            if "configMapRef" in env_source:
                found.add(("ConfigMap", env_source["configMapRef"]["name"]))
            if "secretRef" in env_source:
                found.add(("Secret", env_source["secretRef"]["name"]))
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {})
            if "configMapKeyRef" in reference:
                found.add(("ConfigMap", reference["configMapKeyRef"]["name"]))
            if "secretKeyRef" in reference:
                found.add(("Secret", reference["secretKeyRef"]["name"]))
    return found


def order_problems(docs: list[Doc]) -> list[str]:
    found: list[str] = []
    database = database_objects(docs)
    jobs = [doc for doc in docs if is_migration(doc)]
    deployments = [doc for doc in docs if doc["kind"] == "Deployment"]
    if not database or not jobs or not deployments:
        return [f"nothing to order: {len(database)} database objects, {len(jobs)} Jobs, {len(deployments)}"]
    database_wave = max(wave(doc) for doc in database)
    for doc in database:
        if annotation(doc, HOOK) is not None:
            found.append(f"{where(doc)} is a hook: Argo CD would not keep it")
    for job in jobs:
        if annotation(job, HOOK) != "Sync":
            found.append(
                f"{where(job)} is hook {annotation(job, HOOK)!r}, not Sync: it would run before the Cluster"
            )
        if annotation(job, HOOK_DELETE_POLICY) != "BeforeHookCreation":
            found.append(f"{where(job)} is not made anew at each sync (BeforeHookCreation)")
        if wave(job) <= database_wave:
            found.append(f"{where(job)} is in wave {wave(job)}, not after the database's ({database_wave})")
    for deployment in deployments:
        if annotation(deployment, HOOK) is not None:
            found.append(f"{where(deployment)} is a hook")
        later = [job for job in jobs if wave(job) >= wave(deployment)]
        if later:
            found.append(
                f"{where(deployment)} is in wave {wave(deployment)}, not after the migration Jobs' "
                f"({', '.join(f'{where(j)}: {wave(j)}' for j in later)})"
            )
    first_job_wave = min(wave(job) for job in jobs)
    for doc in docs:
        if doc["kind"] == "Namespace" and wave(doc) > min(wave(other) for other in docs):
            found.append(f"{where(doc)} is in wave {wave(doc)}, after objects that go in it")
    policies = [doc for doc in docs if doc["kind"] == "NetworkPolicy"]
    policy_waves = {wave(doc) for doc in policies}
    if len(policy_waves) > 1:
        found.append(f"the NetworkPolicies are in waves {sorted(policy_waves)}: the default deny comes alone")
    found.extend(
        f"{where(doc)} is in wave {wave(doc)}, after the database's ({database_wave})"
        for doc in policies
        if wave(doc) > database_wave
    )
    by_name = {(doc["kind"], doc["metadata"]["name"]): doc for doc in docs}
    for job in jobs:
        needed = {("ServiceAccount", job["spec"]["template"]["spec"].get("serviceAccountName", "default"))}
        for kind, name in sorted(needed | used_by(job)):
            dependency = by_name.get((kind, name))
            if dependency is not None and wave(dependency) >= first_job_wave:
                found.append(
                    f"{where(job)} needs {kind}/{name}, which is in wave {wave(dependency)}, not before it"
                )
    # kubectl's first step is the same set as the database's wave.
    staged = {where(doc) for doc in docs if label(doc, STAGE) == "database"}
    in_wave = {where(doc) for doc in docs if wave(doc) == database_wave and annotation(doc, HOOK) is None}
    if staged != in_wave:
        found.append(
            f"label {STAGE}=database is on {sorted(staged - in_wave)} beyond the database's wave, and "
            f"missing from {sorted(in_wave - staged)}"
        )
    return found


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_a_first_deploy_brings_the_database_then_the_migrations_then_the_services(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    docs = list(rendered[overlay].docs)
    assert order_problems(docs) == []
    # What the runbook says, in numbers.
    database = {wave(doc) for doc in database_objects(docs)}
    jobs = {wave(doc) for doc in docs if is_migration(doc)}
    deployments = {wave(doc) for doc in docs if doc["kind"] == "Deployment"}
    assert (database, jobs, deployments) == ({-2}, {-1}, {0})
    backups = set() if overlay == "dev" else {"ObjectStore", "ScheduledBackup"}
    assert {doc["kind"] for doc in database_objects(docs)} == {"Cluster", "Database"} | backups


def test_the_runbook_applies_the_database_first_by_the_label() -> None:
    runbook = RUNBOOK.read_text()
    assert f"-l {STAGE}=database" in runbook
    assert "wait --for=condition=Ready cluster/aldredirekt-db" in runbook


def _migration_before_the_cluster(docs: list[Doc]) -> None:
    for doc in docs:
        if is_migration(doc):
            doc["metadata"]["annotations"][HOOK] = "PreSync"


def _migration_in_the_database_wave(docs: list[Doc]) -> None:
    next(doc for doc in docs if is_migration(doc))["metadata"]["annotations"][WAVE] = "-2"


def _migration_kept(docs: list[Doc]) -> None:
    next(doc for doc in docs if is_migration(doc))["metadata"]["annotations"].pop(HOOK_DELETE_POLICY)


def _deployment_early(docs: list[Doc]) -> None:
    deployment = next(doc for doc in docs if doc["kind"] == "Deployment")
    deployment["metadata"].setdefault("annotations", {})[WAVE] = "-1"


def _cluster_late(docs: list[Doc]) -> None:
    next(doc for doc in docs if doc["kind"] == "Cluster")["metadata"]["annotations"][WAVE] = "0"


def _policy_late(docs: list[Doc]) -> None:
    next(doc for doc in docs if doc["kind"] == "NetworkPolicy")["metadata"]["annotations"].pop(WAVE)


def _service_account_late(docs: list[Doc]) -> None:
    account = next(d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "case")
    account["metadata"]["annotations"].pop(WAVE)


def _label_missing(docs: list[Doc]) -> None:
    next(doc for doc in docs if doc["kind"] == "Cluster")["metadata"]["labels"].pop(STAGE)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_migration_before_the_cluster, "is hook 'PreSync', not Sync"),
        (_migration_in_the_database_wave, "is in wave -2, not after the database's (-2)"),
        (_migration_kept, "is not made anew at each sync"),
        (_deployment_early, "is in wave -1, not after the migration Jobs'"),
        (_cluster_late, "is in wave -1, not after the database's (0)"),
        (_policy_late, "the NetworkPolicies are in waves [-2, 0]"),
        (_service_account_late, "Job/case-migrate needs ServiceAccount/case, which is in wave 0"),
        (_label_missing, "missing from ['Cluster/aldredirekt-db']"),
    ],
)
def test_the_order_check_refuses_a_broken_order(
    rendered: dict[str, Overlay], change: Callable[[list[Doc]], None], expected: str
) -> None:
    docs = copy.deepcopy(list(rendered["prod"].docs))
    assert order_problems(docs) == []
    change(docs)
    problems = order_problems(docs)
    assert any(expected in problem for problem in problems), problems

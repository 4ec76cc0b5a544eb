"""The operators' resources, checked against the fields their APIs document, since no package ships their
CRD schemas for an offline check.

Each schema below lists exactly the fields these manifests use, with their documented types and values
(an unknown or misspelt field fails), from:
- CloudNativePG 1.27-1.31 API reference: Cluster (instances, primaryUpdateStrategy, bootstrap.initdb,
  managed.roles, postgresql.parameters, storage, walStorage, affinity, resources, plugins), Database
  (cluster, name, owner, ensure, databaseReclaimPolicy) and ScheduledBackup (schedule with seconds,
  immediate, backupOwnerReference, cluster, method, pluginConfiguration);
- the Barman Cloud plugin (barmancloud.cnpg.io/v1 ObjectStore: configuration as barman-cloud's
  BarmanObjectStoreConfiguration, retentionPolicy such as "30d");
- the OpenTelemetry Operator's opentelemetry.io/v1beta1 OpenTelemetryCollector (mode, replicas,
  managementState, podDisruptionBudget, podSecurityContext, securityContext, resources, config).
Embedded Kubernetes types (security contexts, resource requirements) are checked against the Kubernetes
schemas kubernetes-validate ships, for the version the Makefile pins.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from referencing import Registry, Resource

from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import Overlay, base_name, file_at, mounted_files

KUBERNETES_VERSION = re.search(
    r"^KUBERNETES_VERSION := (\S+)$", (Path(__file__).parents[2] / "Makefile").read_text(), re.MULTILINE
)
assert KUBERNETES_VERSION is not None
SCHEMAS = (
    Path(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / f"v{KUBERNETES_VERSION.group(1)}-local-strict"
)
DEFINITIONS = "/api/_definitions.json"
REGISTRY: Registry = Registry().with_resource(
    DEFINITIONS, Resource.from_contents(json.loads((SCHEMAS / "_definitions.json").read_text()))
)


def core(type_name: str) -> dict[str, Any]:
    return {"$ref": f"{DEFINITIONS}#/$defs/io.k8s.api.core.v1.{type_name}"}


def strict(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


TEXT = {"type": "string", "minLength": 1}
FLAG = {"type": "boolean"}
QUANTITY = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$"}
REFERENCE = strict({"name": TEXT}, "name")
SECRET_KEY = strict({"name": TEXT, "key": TEXT}, "name", "key")
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
METADATA = strict(
    {"name": TEXT, "namespace": TEXT, "labels": STRING_MAP, "annotations": STRING_MAP}, "name", "namespace"
)
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"


def resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return strict(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": METADATA, "spec": spec},
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    )


ROLE = strict(
    {
        "name": TEXT,
        "ensure": {"enum": ["present", "absent"]},
        "login": FLAG,
        "inherit": FLAG,
        "passwordSecret": REFERENCE,
    },
    "name",
)
CLUSTER = resource(
    "postgresql.cnpg.io/v1",
    "Cluster",
    strict(
        {
            "instances": {"type": "integer", "minimum": 1},
            "primaryUpdateStrategy": {"enum": ["unsupervised", "supervised"]},
            "bootstrap": strict(
                {
                    "initdb": strict(
                        {"database": TEXT, "owner": TEXT, "secret": REFERENCE}, "database", "owner"
                    )
                }
            ),
            "managed": strict({"roles": {"type": "array", "items": ROLE}}),
            "postgresql": strict({"parameters": STRING_MAP}),
            "storage": strict({"size": QUANTITY, "storageClass": TEXT}, "size"),
            "walStorage": strict({"size": QUANTITY, "storageClass": TEXT}, "size"),
            "affinity": strict(
                {
                    "enablePodAntiAffinity": FLAG,
                    "topologyKey": TEXT,
                    "podAntiAffinityType": {"enum": ["preferred", "required"]},
                }
            ),
            "resources": core("ResourceRequirements"),
            "plugins": {
                "type": "array",
                "items": strict({"name": TEXT, "isWALArchiver": FLAG, "parameters": STRING_MAP}, "name"),
            },
        },
        "instances",
        "storage",
    ),
)
DATABASE = resource(
    "postgresql.cnpg.io/v1",
    "Database",
    strict(
        {
            "cluster": REFERENCE,
            "name": {"type": "string", "not": {"enum": ["postgres", "template0", "template1"]}},
            "owner": TEXT,
            "ensure": {"enum": ["present", "absent"]},
            "databaseReclaimPolicy": {"enum": ["delete", "retain"]},
        },
        "cluster",
        "name",
        "owner",
    ),
)
SCHEDULED_BACKUP = resource(
    "postgresql.cnpg.io/v1",
    "ScheduledBackup",
    strict(
        {
            # CloudNativePG's schedules have six fields, seconds first.
            "schedule": {"type": "string", "pattern": r"^\S+( \S+){5}$"},
            "immediate": FLAG,
            "backupOwnerReference": {"enum": ["none", "self", "cluster"]},
            "cluster": REFERENCE,
            "method": {"enum": ["barmanObjectStore", "volumeSnapshot", "plugin"]},
            "pluginConfiguration": strict({"name": TEXT, "parameters": STRING_MAP}, "name"),
        },
        "cluster",
        "schedule",
    ),
)
COMPRESSION = {"enum": ["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"]}
OBJECT_STORE = resource(
    "barmancloud.cnpg.io/v1",
    "ObjectStore",
    strict(
        {
            "retentionPolicy": {"type": "string", "pattern": r"^[1-9][0-9]*[dwm]$"},
            "configuration": strict(
                {
                    "destinationPath": {"type": "string", "pattern": r"^s3://"},
                    "endpointURL": {"type": "string", "pattern": r"^https://"},
                    "s3Credentials": strict(
                        {"accessKeyId": SECRET_KEY, "secretAccessKey": SECRET_KEY},
                        "accessKeyId",
                        "secretAccessKey",
                    ),
                    "wal": strict({"compression": COMPRESSION}),
                    "data": strict({"compression": COMPRESSION}),
                },
                "destinationPath",
            ),
        },
        "configuration",
    ),
)
PIPELINE = strict(
    {
        name: {"type": "array", "items": TEXT, "minItems": 1}
        for name in ("receivers", "processors", "exporters")
    },
    "receivers",
    "exporters",
)
COLLECTOR = resource(
    "opentelemetry.io/v1beta1",
    "OpenTelemetryCollector",
    strict(
        {
            "mode": {"enum": ["daemonset", "deployment", "sidecar", "statefulset"]},
            "replicas": {"type": "integer", "minimum": 1},
            "managementState": {"enum": ["managed", "unmanaged"]},
            "podDisruptionBudget": strict(
                {
                    "maxUnavailable": {"type": ["integer", "string"]},
                    "minAvailable": {"type": ["integer", "string"]},
                }
            ),
            "podSecurityContext": core("PodSecurityContext"),
            "securityContext": core("SecurityContext"),
            "resources": core("ResourceRequirements"),
            "config": strict(
                {
                    "receivers": {"type": "object", "minProperties": 1},
                    "processors": {"type": "object"},
                    "exporters": {"type": "object", "minProperties": 1},
                    "service": strict(
                        {
                            "pipelines": {
                                "type": "object",
                                "additionalProperties": PIPELINE,
                                "minProperties": 1,
                            }
                        },
                        "pipelines",
                    ),
                },
                "receivers",
                "exporters",
                "service",
            ),
        },
        "mode",
        "config",
    ),
)
SCHEMAS_BY_KIND = {
    ("postgresql.cnpg.io/v1", "Cluster"): CLUSTER,
    ("postgresql.cnpg.io/v1", "Database"): DATABASE,
    ("postgresql.cnpg.io/v1", "ScheduledBackup"): SCHEDULED_BACKUP,
    ("barmancloud.cnpg.io/v1", "ObjectStore"): OBJECT_STORE,
    ("opentelemetry.io/v1beta1", "OpenTelemetryCollector"): COLLECTOR,
}
CUSTOM_GROUPS = ("postgresql.cnpg.io/", "barmancloud.cnpg.io/", "opentelemetry.io/")


def schema_errors(doc: dict[str, Any]) -> list[str]:
    schema = SCHEMAS_BY_KIND.get((doc["apiVersion"], doc["kind"]))
    if schema is None:
        return [f"no schema for {doc['apiVersion']} {doc['kind']}"]
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_custom_resource_uses_only_documented_fields(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    custom = [doc for doc in rendered[overlay].docs if doc["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert custom
    errors = {f"{doc['kind']}/{doc['metadata']['name']}": schema_errors(doc) for doc in custom}
    assert {name: found for name, found in errors.items() if found} == {}


def test_the_field_check_refuses_a_misspelt_field() -> None:
    database = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Database",
        "metadata": {"name": "x", "namespace": "aldredirekt"},
        "spec": {
            "cluster": {"name": "aldredirekt-db"},
            "name": "case",
            "owner": "case",
            "reclaimPolicy": "retain",
        },
    }
    assert any("reclaimPolicy" in error for error in schema_errors(database))
    collector = {
        "apiVersion": "opentelemetry.io/v1beta1",
        "kind": "OpenTelemetryCollector",
        "metadata": {"name": "otel", "namespace": "aldredirekt"},
        "spec": {"mode": "deployment", "podSecurityContext": {"runAsNonroot": True}, "config": {}},
    }
    errors = schema_errors(collector)
    assert any("runAsNonroot" in error for error in errors)


SERVICES_WITH_DATABASES = ("directory", "case", "mirror", "fees")


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_each_service_owns_a_database_and_a_role_whose_secret_its_pods_use(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    manifests = rendered[overlay]
    cluster = manifests.get("Cluster", "aldredirekt-db")["spec"]
    roles = {role["name"]: role for role in cluster["managed"]["roles"]}
    databases = {doc["spec"]["name"]: doc["spec"] for doc in manifests.of_kind("Database")}
    assert set(roles) == set(databases) == set(SERVICES_WITH_DATABASES)
    for service in SERVICES_WITH_DATABASES:
        assert databases[service]["owner"] == service
        assert databases[service]["cluster"]["name"] == "aldredirekt-db"
        assert databases[service]["databaseReclaimPolicy"] == "retain"
        assert roles[service]["login"] is True
        secret = roles[service]["passwordSecret"]["name"]
        for kind, name in (("Deployment", service), ("Job", f"{service}-migrate")):
            pod = manifests.get(kind, name)["spec"]["template"]["spec"]
            env = {e["name"]: e for e in pod["containers"][0]["env"]}
            prefix = service.upper() + "_DATABASE_"
            assert env[prefix + "HOST"]["value"] == "aldredirekt-db-rw"
            assert env[prefix + "NAME"]["value"] == service
            # The role's name, as the Cluster manages it; its password the role's Secret's, as a file.
            assert env[prefix + "USER"] == {"name": prefix + "USER", "value": roles[service]["name"]}
            password = file_at(
                mounted_files(pod, pod["containers"][0]), env[prefix + "PASSWORD_FILE"]["value"]
            )
            assert password is not None
            assert (password.kind, password.source, password.key) == ("secret", secret, "password")
    assert cluster["bootstrap"]["initdb"]["secret"]["name"] == roles["directory"]["passwordSecret"]["name"]


def test_dev_runs_one_database_instance_and_prod_three_with_backups(rendered: dict[str, Overlay]) -> None:
    dev = rendered["dev"].get("Cluster", "aldredirekt-db")["spec"]
    prod = rendered["prod"].get("Cluster", "aldredirekt-db")["spec"]
    assert (dev["instances"], prod["instances"]) == (1, 3)
    assert "plugins" not in dev
    assert rendered["dev"].of_kind("ScheduledBackup") == []
    (archiver,) = prod["plugins"]
    assert archiver["name"] == BARMAN_PLUGIN
    assert archiver["isWALArchiver"] is True
    store = rendered["prod"].get("ObjectStore", archiver["parameters"]["barmanObjectName"])["spec"]
    credentials = store["configuration"]["s3Credentials"]
    assert {credentials["accessKeyId"]["name"], credentials["secretAccessKey"]["name"]} == {
        "aldredirekt-backup-credentials"
    }
    (backup,) = rendered["prod"].of_kind("ScheduledBackup")
    assert backup["spec"]["cluster"]["name"] == "aldredirekt-db"
    assert backup["spec"]["method"] == "plugin"
    assert backup["spec"]["pluginConfiguration"]["name"] == BARMAN_PLUGIN


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_collector_pipelines_name_only_what_it_defines(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    config = rendered[overlay].get("OpenTelemetryCollector", "otel")["spec"]["config"]
    for pipeline in config["service"]["pipelines"].values():
        for part in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(part, [])) <= set(config.get(part, {}))
    assert config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].endswith(":4317")
    exporters = {
        name for pipeline in config["service"]["pipelines"].values() for name in pipeline["exporters"]
    }
    assert exporters == ({"debug"} if overlay == "dev" else {"otlp"})


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_the_services_send_otlp_to_the_collector_the_operator_makes(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    # The operator names the collector's Service <name>-collector.
    (collector,) = rendered[overlay].of_kind("OpenTelemetryCollector")
    telemetry = rendered[overlay].config_map("aldredirekt-telemetry")
    assert telemetry is not None
    assert (
        telemetry["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://{collector['metadata']['name']}-collector:4317"
    )
    assert f"deployment.environment.name={overlay}" in telemetry["OTEL_RESOURCE_ATTRIBUTES"]
    users = {
        doc["metadata"]["name"]
        for doc in rendered[overlay].of_kind("Deployment")
        for source in doc["spec"]["template"]["spec"]["containers"][0].get("envFrom", [])
        if base_name(source.get("configMapRef", {}).get("name", "")) == "aldredirekt-telemetry"
    }
    assert users == set(SERVICES_WITH_DATABASES)

"""Reading the rendered overlays of k8s/: objects by kind and name, ConfigMaps, pod templates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Doc = dict[str, Any]

# Where each kind keeps its pod template.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


@dataclass(frozen=True)
class Overlay:
    name: str
    docs: tuple[Doc, ...]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc.get("kind") == kind]

    def get(self, kind: str, name: str) -> Doc:
        for doc in self.of_kind(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{self.name}: no {kind} {name}")

    def find(self, kind: str, name: str) -> Doc | None:
        try:
            return self.get(kind, name)
        except KeyError:
            return None

    def config_map(self, name: str) -> dict[str, str] | None:
        """The data of a ConfigMap by its name before kustomize's hash suffix, or as rendered."""
        for doc in self.of_kind("ConfigMap"):
            rendered = doc["metadata"]["name"]
            if rendered == name or base_name(rendered) == name:
                return dict(doc.get("data", {}))
        return None

    def pod_templates(self) -> Iterator[tuple[Doc, Doc]]:
        """(owner, pod template) for every object that makes pods, and Pods themselves as (pod, pod)."""
        for doc in self.docs:
            kind = doc.get("kind", "")
            if kind == "Pod":
                yield doc, doc
            elif kind in POD_TEMPLATE_PATHS:
                template: Any = doc
                for step in POD_TEMPLATE_PATHS[kind]:
                    template = template[step]
                yield doc, template


def base_name(rendered: str) -> str:
    """A generated ConfigMap's name without the hash kustomize appends."""
    head, _, tail = rendered.rpartition("-")
    return head if head and len(tail) == 10 and tail.isalnum() else rendered


def label(doc: Doc, key: str) -> str | None:
    value = doc.get("metadata", {}).get("labels", {}).get(key)
    return None if value is None else str(value)


# --- the files a container sees from its volumes -------------------------------------------------------

# What the kubelet gives a file of a Secret, ConfigMap or projected volume without a mode of its own.
DEFAULT_FILE_MODE = 0o644


@dataclass(frozen=True)
class MountedFile:
    """A file (or, with `key` None, every key of a source mounted whole) a container sees, and where the
    kubelet takes it from."""

    path: str  # as the container sees it; with `key` None, the folder holding one file per key
    kind: str  # "secret" or "configMap"
    source: str  # the Secret's or ConfigMap's name
    key: str | None
    mode: int
    read_only: bool
    optional: bool = False


def _source_files(
    kind: str, source: Doc, folder: str, default_mode: int, read_only: bool
) -> list[MountedFile]:
    name = str(source["secretName"] if kind == "secret" and "secretName" in source else source["name"])
    optional = bool(source.get("optional", False))
    items = source.get("items")
    if not items:
        return [MountedFile(folder, kind, name, None, default_mode, read_only, optional)]
    return [
        MountedFile(
            f"{folder}/{item['path']}",
            kind,
            name,
            str(item["key"]),
            int(item.get("mode", default_mode)),
            read_only,
            optional,
        )
        for item in items
    ]


def mounted_files(pod_spec: Doc, container: Doc) -> list[MountedFile]:
    """Every file of a Secret or ConfigMap the container has mounted (projected volumes included)."""
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    found: list[MountedFile] = []
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        folder = str(mount["mountPath"]).rstrip("/")
        read_only = bool(mount.get("readOnly", False))
        files: list[MountedFile] = []
        if "secret" in volume:
            mode = int(volume["secret"].get("defaultMode", DEFAULT_FILE_MODE))
            files = _source_files("secret", volume["secret"], folder, mode, read_only)
        elif "configMap" in volume:
            mode = int(volume["configMap"].get("defaultMode", DEFAULT_FILE_MODE))
            files = _source_files("configMap", volume["configMap"], folder, mode, read_only)
        elif "projected" in volume:
            mode = int(volume["projected"].get("defaultMode", DEFAULT_FILE_MODE))
            for source in volume["projected"].get("sources", []):
                for kind in ("secret", "configMap"):
                    if kind in source:
                        files.extend(_source_files(kind, source[kind], folder, mode, read_only))
        if "subPath" in mount:
            # One file of the volume at the mount path itself.
            wanted = f"{folder}/{mount['subPath']}"
            files = [
                MountedFile(folder, f.kind, f.source, f.key, f.mode, f.read_only, f.optional)
                for f in files
                if f.path == wanted
            ]
        found.extend(files)
    return found


def file_at(files: list[MountedFile], path: str) -> MountedFile | None:
    """The mounted file at `path`: an item of a volume, or a key of a source mounted whole."""
    for file in files:
        if file.key is not None and file.path == path:
            return file
    folder, _, name = path.rpartition("/")
    for file in files:
        if file.key is None and file.path == folder and name:
            return MountedFile(path, file.kind, file.source, name, file.mode, file.read_only, file.optional)
    return None


def readable_by_container(file: MountedFile, pod_spec: Doc, container: Doc) -> bool:
    """Whether the container's user can read the file. The kubelet makes such files owned by root, and by
    the pod's fsGroup when it has one (which the container's processes then have as a supplementary group)."""
    pod_context = pod_spec.get("securityContext") or {}
    context = container.get("securityContext") or {}
    if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
        return True
    if file.mode & 0o004:
        return True
    return pod_context.get("fsGroup") is not None and bool(file.mode & 0o040)


# --- the keys of Secrets the pods need ---------------------------------------------------------------


@dataclass(frozen=True)
class SecretUse:
    """A key of a Secret a pod needs: an item of a volume (mounted or not, the kubelet makes every volume of
    the pod), a secretKeyRef, or a file under a Secret mounted whole that a setting or a mounted ConfigMap
    names. `key` None: every key, which names none (envFrom secretRef)."""

    secret: str
    key: str | None
    where: str  # e.g. Deployment/fees


def secret_uses(overlay: Overlay) -> list[SecretUse]:
    found: list[SecretUse] = []
    for owner, template in overlay.pod_templates():
        where = f"{owner['kind']}/{owner['metadata']['name']}"
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            sources = [volume["secret"]] if "secret" in volume else []
            sources += [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
            for source in sources:
                name = str(source.get("secretName") or source.get("name"))
                found.extend(SecretUse(name, str(item["key"]), where) for item in source.get("items") or [])
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            texts: list[str] = []
            for env_source in container.get("envFrom", []):
                if "secretRef" in env_source:
                    found.append(SecretUse(str(env_source["secretRef"]["name"]), None, where))
                elif "configMapRef" in env_source:
                    texts.extend((overlay.config_map(env_source["configMapRef"]["name"]) or {}).values())
            for variable in container.get("env", []):
                if "value" in variable:
                    texts.append(str(variable["value"]))
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    found.append(SecretUse(str(reference["name"]), str(reference["key"]), where))
            files = mounted_files(spec, container)
            for file in files:
                if file.kind == "configMap":
                    data = overlay.config_map(file.source) or {}
                    texts.extend(data.values() if file.key is None else [data.get(file.key, "")])
            for file in files:
                if file.kind == "secret" and file.key is None:
                    pattern = re.compile(re.escape(file.path) + r"/([\w.-]+)")
                    keys = {match.group(1) for text in texts for match in pattern.finditer(text)}
                    found.extend(SecretUse(file.source, key, where) for key in sorted(keys))
    return found

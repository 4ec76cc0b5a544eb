"""The offline checks of the Kubernetes manifests in k8s/, run by `make k8s-check` (and so by `make test`).

    python -m scripts.k8s_check --kubernetes-version 1.33.0 --checkov .venv-tools/bin/checkov

1. `kubectl kustomize` renders every overlay under k8s/overlays into var/k8s/<overlay>.yaml.
2. kubernetes-validate --strict checks every object of a built-in kind against that Kubernetes version's
   schemas. Objects of the operators' kinds (CloudNativePG, the Barman Cloud plugin, the OpenTelemetry
   Operator) have no schema there: tests/k8s/test_custom_resources.py checks the fields they use. A kind that
   is neither is an error, so nothing goes unchecked.
3. checkov scans the rendered output (kubernetes and secrets frameworks) and must report no failed check;
   a check is skipped only by a `checkov.io/skip<n>: CKV_…=<reason>` annotation on the object itself.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "k8s"
OVERLAYS = K8S / "overlays"
OUTPUT = ROOT / "var" / "k8s"

# API groups whose kinds ship with Kubernetes ("" is the core group).
BUILT_IN_GROUPS = frozenset(
    {"", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io"}
)
# The operators' groups, checked by tests/k8s/test_custom_resources.py instead.
CUSTOM_GROUPS = frozenset({"postgresql.cnpg.io", "barmancloud.cnpg.io", "opentelemetry.io"})


class CheckFailed(Exception):
    pass


def overlays() -> list[str]:
    return sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())


def render(overlay: str) -> str:
    """The overlay as `kubectl kustomize` renders it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise CheckFailed("kubectl is not on PATH: it renders the kustomize overlays (no cluster is needed)")
    done = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / overlay)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CheckFailed(f"kubectl kustomize k8s/overlays/{overlay} failed:\n{done.stderr.strip()}")
    return done.stdout


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def api_group(doc: dict[str, Any]) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.rpartition("/")[0]


def split_by_kind(docs: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(built-in objects, the operators' objects); raises for an object of any other group."""
    built_in: list[dict[str, Any]] = []
    custom: list[dict[str, Any]] = []
    for doc in docs:
        group = api_group(doc)
        if group in BUILT_IN_GROUPS:
            built_in.append(doc)
        elif group in CUSTOM_GROUPS:
            custom.append(doc)
        else:
            name = doc.get("metadata", {}).get("name")
            raise CheckFailed(f"{doc.get('kind')} {name} ({doc.get('apiVersion')}) has no check")
    return built_in, custom


def validate_built_in(path: Path, kubernetes_version: str) -> None:
    validator = Path(sys.executable).parent / "kubernetes-validate"
    done = subprocess.run(
        [str(validator), "--strict", "--kubernetes-version", kubernetes_version, "--quiet", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    # --quiet prints warnings and failures only; a warning here (a kind without a schema) is a failure too.
    output = (done.stdout + done.stderr).strip()
    if done.returncode != 0 or output:
        raise CheckFailed(f"kubernetes-validate {kubernetes_version} refused {path.name}:\n{output}")


def run_checkov(checkov: str, folder: Path) -> None:
    done = subprocess.run(
        [
            checkov,
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "secrets",
            # Offline: no policy download from the vendor's platform.
            "--skip-download",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CheckFailed(f"checkov found problems in the rendered manifests:\n{done.stdout}{done.stderr}")
    print(done.stdout.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubernetes-version", required=True, help="e.g. 1.33.0")
    parser.add_argument("--checkov", required=True, help="the checkov executable (its own virtualenv)")
    arguments = parser.parse_args(argv)
    rendered_dir = OUTPUT / "rendered"
    built_in_dir = OUTPUT / "built-in"
    for folder in (rendered_dir, built_in_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    try:
        for overlay in overlays():
            rendered = render(overlay)
            (rendered_dir / f"{overlay}.yaml").write_text(rendered)
            built_in, custom = split_by_kind(documents(rendered))
            built_in_path = built_in_dir / f"{overlay}.yaml"
            built_in_path.write_text(yaml.safe_dump_all(built_in, sort_keys=False))
            validate_built_in(built_in_path, arguments.kubernetes_version)
            print(
                f"k8s/overlays/{overlay}: rendered; {len(built_in)} built-in objects valid for Kubernetes "
                f"{arguments.kubernetes_version} (strict); {len(custom)} custom resources left to tests/k8s"
            )
        run_checkov(arguments.checkov, rendered_dir)
    except CheckFailed as failure:
        print(f"k8s-check: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

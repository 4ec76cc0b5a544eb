"""scripts/k8s_secrets.py, which the runbook uses to publish grant keys and to give dev the stand-ins'
credentials, checked against what the rendered overlays' pods need of the Secrets it makes: every key a dev
or prod pod mounts or references of them is one it makes (a missing key keeps the pod in
ContainerCreating), found from the manifests, so that a key added to a pod later is caught here."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scripts import k8s_secrets
from scripts.k8s_secrets import grant_jwks, standin_credentials
from services.common.auth import SigningKey
from tests.k8s.conftest import OVERLAY_NAMES
from tests.k8s.manifests import Overlay, secret_uses

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "k8s" / "README.md"
CLIENT_SECRET = "the-dev-idp-client-secret"


def write_key(folder: Path, name: str) -> tuple[Path, SigningKey]:
    key = SigningKey.generate("ES256")
    path = folder / name
    path.write_bytes(key.to_pem())
    return path, key


def made_by_helper() -> dict[str, dict[str, str]]:
    """The helper's Secrets: name → key → value."""
    document = standin_credentials(2026, "aldredirekt", CLIENT_SECRET)
    assert document["kind"] == "List"
    return {item["metadata"]["name"]: dict(item["stringData"]) for item in document["items"]}


def made_by_the_operator(overlay: Overlay) -> set[str]:
    """What CloudNativePG makes with the Cluster: its CA (`<cluster>-ca`, or the one the spec names)."""
    found: set[str] = set()
    for cluster in overlay.of_kind("Cluster"):
        certificates = cluster["spec"].get("certificates") or {}
        found.add(str(certificates.get("serverCASecret") or f"{cluster['metadata']['name']}-ca"))
    return found


def test_a_rotation_publishes_the_new_key_beside_the_old_then_drops_the_old(tmp_path: Path) -> None:
    old_path, old = write_key(tmp_path, "old.pem")
    new_path, new = write_key(tmp_path, "new.pem")
    current = tmp_path / "jwks.json"
    current.write_text(json.dumps(grant_jwks([old_path], None, [])))
    both = grant_jwks([new_path], current, [])
    assert [jwk["kid"] for jwk in both["keys"]] == [old.kid, new.kid]
    assert all("d" not in jwk for jwk in both["keys"])  # public halves only
    current.write_text(json.dumps(both))
    assert [jwk["kid"] for jwk in grant_jwks([], current, [old.kid])["keys"]] == [new.kid]


def test_the_last_key_is_never_dropped(tmp_path: Path) -> None:
    path, key = write_key(tmp_path, "only.pem")
    current = tmp_path / "jwks.json"
    current.write_text(json.dumps(grant_jwks([path], None, [])))
    with pytest.raises(SystemExit):
        grant_jwks([], current, [key.kid])


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_key_a_pod_needs_of_the_helpers_secrets_is_one_it_makes(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    made = made_by_helper()
    uses = [use for use in secret_uses(rendered[overlay]) if use.secret in made]
    assert uses, "no pod uses the helper's Secrets: the test would check nothing"
    missing = {
        f"{use.where}: {use.secret} key {use.key or '(every key, named nowhere)'}"
        for use in uses
        if use.key is None or use.key not in made[use.secret]
    }
    assert missing == set()
    if overlay == "dev":
        # And it makes nothing the dev pods do not use (a key left over from a source that is gone).
        assert {(use.secret, use.key) for use in uses} == {
            (name, key) for name, keys in made.items() for key in keys
        }


@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_every_other_secret_a_pod_needs_is_the_operators_or_named_key_by_key_in_the_runbook(
    rendered: dict[str, Overlay], overlay: str
) -> None:
    # The runbook's table of Secrets made by hand before the first deploy: a row per Secret (or kind of
    # Secret), its keys in the second column.
    rows = [line for line in RUNBOOK.read_text().splitlines() if line.startswith("| `")]
    exempt = made_by_the_operator(rendered[overlay])
    assert exempt == {"aldredirekt-db-ca"}
    problems: set[str] = set()
    for use in secret_uses(rendered[overlay]):
        if use.secret in made_by_helper() or use.secret in exempt:
            continue
        row = next((r for r in rows if f"`{use.secret}`" in r.split("|")[1]), None)
        if row is None:
            problems.add(f"{use.where}: Secret {use.secret} has no row in the runbook's table")
        elif use.key is None or f"`{use.key}`" not in row.split("|")[2]:
            problems.add(f"{use.where}: key {use.key} of {use.secret} is not in its runbook row")
    assert problems == set()


def test_the_standin_credentials_are_what_the_standins_accept() -> None:
    from upstreams.credentials import credentials

    found = credentials(2026)
    made = made_by_helper()
    assert made["mirror-upstream-credentials"]["agresso"] == found.agresso_api_key
    assert made["mirror-upstream-credentials"]["paraply-bromma"] == found.paraply_passwords["bromma"]
    # Dev's finance system is Agresso's stand-in; the client secret is the dev identity provider's, given.
    assert made["fees-credentials"] == {
        "finance-api-key": found.agresso_api_key,
        "client-secret": CLIENT_SECRET,
    }


def test_the_command_reads_the_client_secret_from_a_file_or_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    assert k8s_secrets.main(["standin-credentials", "--client-secret-file", str(secret_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    items = {item["metadata"]["name"]: item for item in printed["items"]}
    assert items["fees-credentials"]["stringData"]["client-secret"] == CLIENT_SECRET
    assert {item["metadata"]["namespace"] for item in items.values()} == {"aldredirekt"}
    monkeypatch.setattr("sys.stdin", io.StringIO(f"  {CLIENT_SECRET}  "))
    assert k8s_secrets.main(["standin-credentials", "--client-secret-file", "-"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["items"][1]["stringData"]["client-secret"] == CLIENT_SECRET


def test_the_command_refuses_to_make_the_secrets_without_the_client_secret(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        k8s_secrets.main(["standin-credentials"])
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(SystemExit, match="no client secret"):
        k8s_secrets.main(["standin-credentials", "--client-secret-file", str(empty)])

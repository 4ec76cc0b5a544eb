"""What the Kubernetes runbook (k8s/README.md) needs beside kubectl and openssl.

    python -m scripts.k8s_secrets grant-jwks [--jwks CURRENT.json] [--drop KID] [KEY.pem …]
        The JWKS of the case service's grant keys, for the ConfigMap grant-jwks that mirror and fees read:
        the public halves of the given private keys, added to those of CURRENT.json, less the kids dropped.
    python -m scripts.k8s_secrets standin-credentials --client-secret-file FILE [--seed 2026]
        Dev only: the Secrets mirror-upstream-credentials and fees-credentials, as JSON for
        `kubectl apply -f -`, with every key the dev pods mount: what the upstream stand-ins (python -m
        upstreams, UPSTREAMS_SECRET_SEED) accept, and the fee service's client secret at the dev identity
        provider (FEES_CLIENT_ID's, which no seed derives), read from FILE ("-": standard input).

Output goes to stdout; nothing is written anywhere else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.common.auth import SigningKey


def grant_jwks(keys: list[Path], current: Path | None, drop: list[str]) -> dict[str, Any]:
    published: dict[str, dict[str, Any]] = {}
    if current is not None:
        for jwk in json.loads(current.read_text()).get("keys", []):
            published[str(jwk["kid"])] = jwk
    for path in keys:
        key = SigningKey.from_pem(path.read_bytes())
        published[key.kid] = key.public_jwk()
    for kid in drop:
        if published.pop(kid, None) is None:
            raise SystemExit(f"no key with kid {kid} to drop")
    if not published:
        raise SystemExit("the JWKS would hold no key: mirror and fees would refuse every grant")
    return {"keys": list(published.values())}


def standin_credentials(seed: int, namespace: str, client_secret: str) -> dict[str, Any]:
    # Demo code: imported only here, never by the services.
    from upstreams.credentials import AGRESSO, credentials, paraply_instance

    found = credentials(seed)
    sources = {AGRESSO: found.agresso_api_key}
    for district_id, password in found.paraply_passwords.items():
        sources[paraply_instance(district_id)] = password

    def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque",
            "stringData": data,
        }

    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            secret("mirror-upstream-credentials", sources),
            # The finance system of dev is Agresso's stand-in; the client secret is the dev IdP's own.
            secret(
                "fees-credentials",
                {"finance-api-key": found.agresso_api_key, "client-secret": client_secret},
            ),
        ],
    }


def read_client_secret(path: str) -> str:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    # The service drops whitespace around what it reads too (services/common/secrets.py).
    value = text.strip()
    if not value:
        raise SystemExit(f"{path}: no client secret in it")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    jwks = commands.add_parser("grant-jwks", help="the grant keys' JWKS")
    jwks.add_argument("keys", nargs="*", type=Path, help="PEM private keys to publish")
    jwks.add_argument("--jwks", type=Path, help="the JWKS published now, to keep")
    jwks.add_argument("--drop", action="append", default=[], help="a kid to stop publishing")
    standins = commands.add_parser("standin-credentials", help="dev: the stand-ins' credentials as Secrets")
    standins.add_argument("--seed", type=int, default=2026, help="UPSTREAMS_SECRET_SEED of the stand-ins")
    standins.add_argument("--namespace", default="aldredirekt")
    standins.add_argument(
        "--client-secret-file",
        required=True,
        help="a file holding the dev identity provider's client secret of FEES_CLIENT_ID ('-': stdin)",
    )
    arguments = parser.parse_args(argv)
    if arguments.command == "grant-jwks":
        document = grant_jwks(arguments.keys, arguments.jwks, arguments.drop)
    else:
        document = standin_credentials(
            arguments.seed, arguments.namespace, read_client_secret(arguments.client_secret_file)
        )
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The credentials each stand-in accepts, derived from a seed so that the stand-ins, the tests and the
mirror's configuration agree without a secret being written down anywhere.

Paraply takes HTTP Basic with `aldredirekt-<district>` and the district's password; Agresso takes an API
key in `X-API-Key`; the control listener takes `X-Control-Token`. These are test credentials: derived,
not random, and never logged (their repr hides them).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from synthcity.city import DISTRICTS

__all__ = [
    "AGRESSO",
    "CONTROL",
    "Credentials",
    "basic_authorization",
    "credentials",
    "instance_names",
    "paraply_instance",
    "sources_document",
]

AGRESSO = "agresso"
CONTROL = "control"
_PARAPLY_PREFIX = "paraply-"


def paraply_instance(district_id: str) -> str:
    return f"{_PARAPLY_PREFIX}{district_id}"


def instance_names() -> list[str]:
    """Agresso, then each district's Paraply in `DISTRICTS` order: the order of their ports."""
    return [AGRESSO, *(paraply_instance(district.district_id) for district in DISTRICTS)]


def _derive(seed: int, purpose: str) -> str:
    digest = hashlib.sha256(f"aldredirekt-upstreams|{seed}|{purpose}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class Credentials:
    seed: int
    # District id → password.
    paraply_passwords: Mapping[str, str] = field(repr=False)
    agresso_api_key: str = field(repr=False)
    control_token: str = field(repr=False)

    @staticmethod
    def paraply_username(district_id: str) -> str:
        return f"aldredirekt-{district_id}"

    def headers(self, instance: str) -> dict[str, str]:
        """What a client sends to `instance` with these credentials."""
        if instance == AGRESSO:
            return {"X-API-Key": self.agresso_api_key}
        if instance == CONTROL:
            return {"X-Control-Token": self.control_token}
        district_id = instance.removeprefix(_PARAPLY_PREFIX)
        password = self.paraply_passwords[district_id]
        return {"Authorization": basic_authorization(self.paraply_username(district_id), password)}

    def environment(self, prefix: str = "UPSTREAM_") -> dict[str, str]:
        """The secrets as environment variables, named as `sources_document` refers to them."""
        found = {f"{prefix}AGRESSO_API_KEY": self.agresso_api_key}
        for district_id, password in self.paraply_passwords.items():
            found[_password_variable(prefix, district_id)] = password
        return found


def credentials(seed: int = 2026) -> Credentials:
    return Credentials(
        seed=seed,
        paraply_passwords={d.district_id: _derive(seed, f"paraply:{d.district_id}") for d in DISTRICTS},
        agresso_api_key=_derive(seed, "agresso"),
        control_token=_derive(seed, "control"),
    )


def _password_variable(prefix: str, district_id: str) -> str:
    return f"{prefix}PARAPLY_{district_id.upper().replace('-', '_')}_PASSWORD"


def sources_document(urls: Mapping[str, str], prefix: str = "UPSTREAM_") -> dict[str, list[dict[str, str]]]:
    """The mirror's sources file (MIRROR_SOURCES_FILE) for stand-ins at `urls` (instance → base URL), with
    the secrets named by environment variable (`Credentials.environment`), never written in it."""
    sources: list[dict[str, str]] = [
        {
            "name": AGRESSO,
            "kind": "agresso",
            "url": urls[AGRESSO],
            "api_key_env": f"{prefix}AGRESSO_API_KEY",
        }
    ]
    for district in DISTRICTS:
        name = paraply_instance(district.district_id)
        sources.append(
            {
                "name": name,
                "kind": "paraply",
                "district": district.district_id,
                "url": urls[name],
                "username": Credentials.paraply_username(district.district_id),
                "password_env": _password_variable(prefix, district.district_id),
            }
        )
    return {"sources": sources}

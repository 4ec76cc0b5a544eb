"""A token issuer for local runs and tests: one key pair on disk and a command that mints tokens.

Never for production: anyone who can read the key file can become anyone. Services find its keys
through the JWKS file it writes beside the key, exactly as they would find a real issuer's.

    python -m services.common.devissuer mint --role officer --unit units/vasterort
    python -m services.common.devissuer jwks
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.common.auth import UNIT_NAME, Role, SigningKey, jwks_document
from services.common.errors import InvalidArgument
from services.common.personnummer import parse_person_number

DEFAULT_DIR = Path("var/dev-issuer")
DEV_ISSUER = "https://dev-issuer.aldredirekt.local"
DEV_AUDIENCE = "aldredirekt"
KEY_FILE = "key.pem"
JWKS_FILE = "jwks.json"
# An officer or a unit manager acts for one unit, which their token names.
UNIT_ROLES = frozenset({Role.OFFICER, Role.UNIT_MANAGER})


def _write_atomically(path: Path, data: bytes) -> None:
    """Writes a file so that no reader ever sees it half-written; mkstemp makes it 0600."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_key_once(path: Path) -> None:
    """Creates the key file unless another process already has.

    Linking a complete temporary file into place fails when the name exists, so two services
    starting at once end up sharing the first key instead of each signing with its own.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(SigningKey.generate("ES256").to_pem())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


class DevIssuer:
    def __init__(self, key: SigningKey, directory: Path):
        self.key = key
        self.directory = directory

    @classmethod
    def load_or_create(cls, directory: Path = DEFAULT_DIR) -> DevIssuer:
        """The issuer whose key lives in `directory`, creating the key on first use."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path = directory / KEY_FILE
        if not key_path.exists():
            _create_key_once(key_path)
        issuer = cls(SigningKey.from_pem(key_path.read_bytes()), directory)
        _write_atomically(issuer.jwks_path, json.dumps(jwks_document([issuer.key]), indent=2).encode())
        issuer.jwks_path.chmod(0o644)
        return issuer

    @property
    def jwks_path(self) -> Path:
        return self.directory / JWKS_FILE

    def mint(
        self,
        *,
        role: str | list[str],
        subject: str | None = None,
        unit: str | None = None,
        person_number: str | None = None,
        ttl_seconds: int = 3600,
        audience: str = DEV_AUDIENCE,
        issuer: str = DEV_ISSUER,
    ) -> str:
        """A signed token; raises ValueError for what a verifier would refuse anyway."""
        roles = _roles(role)
        if ttl_seconds <= 0:
            raise ValueError("the lifetime must be a positive number of seconds")
        if unit is not None and not UNIT_NAME.fullmatch(unit):
            raise ValueError(
                f'unit must look like "units/<id>" with lower case letters, digits and hyphens, not {unit!r}'
            )
        if Role.CITIZEN in roles and person_number is None:
            raise ValueError("a citizen token needs a person number")
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience,
            "sub": subject or f"dev-{roles[0]}",
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
            "roles": [str(r) for r in roles],
        }
        if unit is not None:
            claims["unit"] = unit
        if person_number is not None:
            claims["person_number"] = _twelve_digits(person_number)
        return self.key.sign(claims)


def _roles(role: str | list[str]) -> list[Role]:
    names = [role] if isinstance(role, str) else list(role)
    if not names:
        raise ValueError("at least one role is needed")
    known = {r.value: r for r in Role}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r}; choose from {', '.join(known)}")
    return list(dict.fromkeys(known[name] for name in names))


def check_claims_for_roles(role: str | list[str], *, unit: str | None, person_number: str | None) -> None:
    """Refuses a token asked for by hand that lacks a claim its roles need, saying how to add it.

    Besides what mint() refuses, an officer or unit manager needs a unit here: mint() allows one without,
    since a verifier accepts it and tests use it for a caller outside every unit, but someone typing a
    command has almost always just forgotten --unit, and would otherwise learn so from a refusal later.
    """
    roles = _roles(role)
    if unit is None and (needing := [str(r) for r in roles if r in UNIT_ROLES]):
        raise ValueError(
            f"a token for {' and '.join(needing)} needs a unit: add --unit units/<id> "
            "(make token: UNIT=units/<id>)"
        )
    if person_number is None and Role.CITIZEN in roles:
        raise ValueError(
            "a citizen token needs a person number: add --person-number YYYYMMDD-NNNN "
            "(make token: PERSON=YYYYMMDD-NNNN)"
        )


def _twelve_digits(person_number: str) -> str:
    try:
        return str(parse_person_number(person_number, field="person_number"))
    except InvalidArgument:
        # The value is not repeated: even a made-up person number is treated as personal data.
        raise ValueError("the person number is not valid") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.common.devissuer",
        description="Development token issuer. Never use it in production.",
    )
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the key and JWKS live")
    commands = parser.add_subparsers(dest="command", required=True)

    mint = commands.add_parser("mint", help="print a signed token")
    mint.add_argument("--role", action="append", required=True, help="repeat for several roles")
    mint.add_argument("--unit", help='"units/<id>" for officers and unit managers')
    mint.add_argument("--person-number", help="for citizens: the person they are")
    mint.add_argument("--subject", help='defaults to "dev-<first role>"')
    mint.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    mint.add_argument("--audience", default=DEV_AUDIENCE)
    mint.add_argument("--issuer", default=DEV_ISSUER)
    mint.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="where the key and JWKS live")

    jwks = commands.add_parser("jwks", help="print the path of the JWKS file")
    jwks.add_argument("--dir", type=Path, default=argparse.SUPPRESS, help="where the key and JWKS live")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "mint":
            # Before the key is created: a refused command leaves nothing behind.
            check_claims_for_roles(args.role, unit=args.unit, person_number=args.person_number)
        issuer = DevIssuer.load_or_create(args.dir)
        if args.command == "jwks":
            print(issuer.jwks_path.resolve())
            return 0
        token = issuer.mint(
            role=args.role,
            subject=args.subject,
            unit=args.unit,
            person_number=args.person_number,
            ttl_seconds=args.ttl,
            audience=args.audience,
            issuer=args.issuer,
        )
    except (ValueError, OSError) as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Etags for optimistic concurrency: updates must send the etag they read, or are ABORTED."""

from __future__ import annotations

import hashlib

from services.common.errors import InvalidArgument, StaleEtag


def etag_for(name: str, revision: int) -> str:
    """An opaque etag for revision `revision` of the resource `name`."""
    return hashlib.sha256(f"{name}#{revision}".encode()).hexdigest()[:20]


def check_etag(*, name: str, revision: int, sent: str, field: str = "etag") -> None:
    """Refuses an update made on a stale read; an etag is required so that no update is ever blind."""
    if not sent:
        raise InvalidArgument.field(field, "is required: send the etag of the version you read")
    if sent != etag_for(name, revision):
        raise StaleEtag(name)

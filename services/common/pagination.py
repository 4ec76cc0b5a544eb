"""Opaque page tokens bound to the query they continue, as in AIP-158.

A token carries the position after the last item returned and a fingerprint of the query's filters;
a token from another query, or a changed filter, is refused instead of giving a wrong page.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def query_fingerprint(query: Mapping[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class PageRequest:
    """A validated page: how many items, and the position (e.g. the last key) to continue after."""

    size: int
    after: Any
    query: str

    def _bad(self) -> InvalidArgument:
        return InvalidArgument.field("page_token", "is not a page token this service issued")

    # The position comes back from the client, so its shape is checked before it reaches a query.

    def after_text(self) -> str | None:
        if self.after is None or isinstance(self.after, str):
            return self.after
        raise self._bad()

    def after_int(self) -> int | None:
        if self.after is None or (isinstance(self.after, int) and not isinstance(self.after, bool)):
            return self.after
        raise self._bad()

    def after_text_and_int(self) -> tuple[str, int] | None:
        if self.after is None:
            return None
        if (
            isinstance(self.after, list)
            and len(self.after) == 2
            and isinstance(self.after[0], str)
            and isinstance(self.after[1], int)
        ):
            return self.after[0], self.after[1]
        raise self._bad()

    def next_token(self, last_position: Any, *, more: bool) -> str:
        """The token for the page after this one, or "" when there is none."""
        if not more:
            return ""
        payload = json.dumps({"q": self.query, "a": last_position}, separators=(",", ":"))
        return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def page_request(page_size: int, page_token: str, query: Mapping[str, Any]) -> PageRequest:
    """Validates page_size (default 50, at most 1000, never negative) and decodes page_token for `query`."""
    if page_size < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    size = DEFAULT_PAGE_SIZE if page_size == 0 else min(page_size, MAX_PAGE_SIZE)
    fingerprint = query_fingerprint(query)
    if not page_token:
        return PageRequest(size=size, after=None, query=fingerprint)
    try:
        padded = page_token + "=" * (-len(page_token) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        token_query, after = decoded["q"], decoded["a"]
    # RecursionError: a made-up token of deeply nested brackets exhausts the JSON decoder's stack.
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise InvalidArgument.field("page_token", "is not a page token this service issued") from None
    if token_query != fingerprint:
        raise InvalidArgument.field(
            "page_token", "belongs to a different query; send the same filters as the first page"
        )
    return PageRequest(size=size, after=after, query=fingerprint)

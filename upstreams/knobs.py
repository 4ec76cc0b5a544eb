"""The faults and behaviour an instance is set to, changed by the control API or directly by a test.

Knobs tell their instance whenever one changes, so that setting `knobs.down = True` in a test has the same
effect as the control API: the listener closes, and opens again on the same port when it is cleared.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["KnobError", "Knobs"]


class KnobError(ValueError):
    """A knob that does not exist or a value it cannot take; the message names the knob."""


@dataclass
class Knobs:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Share of requests answered 500 or 503.
    error_rate: float = 0.0
    # Share of requests answered 429 with Retry-After.
    throttle_rate: float = 0.0
    retry_after_s: float = 1.0
    # The listener is closed: connections are refused.
    down: bool = False
    # Requests are held unanswered until the client gives up (or the knob is cleared).
    hang: bool = False
    # Share of records served broken, drawn per version of each record.
    malformed_rate: float = 0.0
    # A rotated Paraply password or Agresso API key; None for the one derived from the seed.
    password: str | None = None
    api_key: str | None = None
    changes_per_second: float = 0.0
    late_commit_seconds: float = 2.0

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        watcher: Callable[[str], None] | None = self.__dict__.get("_watcher")
        if watcher is not None:
            watcher(name)

    def watch(self, watcher: Callable[[str], None]) -> None:
        object.__setattr__(self, "_watcher", watcher)

    def copy(self) -> Knobs:
        return replace(self)

    def update(self, changes: Mapping[str, Any], *, kind: str) -> None:
        """Sets the knobs named in `changes` (JSON values) after checking them all; `kind` is the instance's
        kind, "paraply" or "agresso", which decides which credential can be rotated."""
        checked = {name: _checked(name, value, kind) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def reset(self, defaults: Knobs) -> None:
        for knob in fields(self):
            value = getattr(defaults, knob.name)
            if getattr(self, knob.name) != value:
                setattr(self, knob.name, value)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {knob.name: getattr(self, knob.name) for knob in fields(self)}
        # The control API says that a credential was rotated, never what to.
        for secret in ("password", "api_key"):
            shown[secret] = None if shown[secret] is None else "(rotated)"
        return shown


_RATES = frozenset({"error_rate", "throttle_rate", "malformed_rate"})
_DURATIONS = {
    "latency_ms": 600_000.0,
    "jitter_ms": 600_000.0,
    "retry_after_s": 3_600.0,
    "changes_per_second": 10_000.0,
    "late_commit_seconds": 3_600.0,
}
_SWITCHES = frozenset({"down", "hang"})
_SECRETS = {"password": "paraply", "api_key": "agresso"}


def _checked(name: str, value: object, kind: str) -> object:
    if name in _SWITCHES:
        if not isinstance(value, bool):
            raise KnobError(f"{name} must be true or false")
        return value
    if name in _SECRETS:
        if _SECRETS[name] != kind:
            raise KnobError(f"{name} is not a credential of a {kind} instance")
        if value is not None and (not isinstance(value, str) or not 1 <= len(value) <= 200):
            raise KnobError(f"{name} must be 1 to 200 characters, or null for the original")
        return value
    if name in _RATES or name in _DURATIONS:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise KnobError(f"{name} must be a number")
        highest = 1.0 if name in _RATES else _DURATIONS[name]
        if not 0 <= value <= highest:
            raise KnobError(f"{name} must be from 0 to {highest:g}")
        return float(value)
    raise KnobError(f"there is no knob {name!r}")

"""The background changes: each instance changes its records at its `changes_per_second` knob, a share of
them committed late, while the mirror reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from upstreams.mutations import MutationError, mutate
from upstreams.world import Instance, World

__all__ = ["LATE_SHARE", "run_mutator"]

log = logging.getLogger("upstreams.mutator")

# How often each kind of change happens, relative to the others.
_PARAPLY_CHANGES: tuple[tuple[str, int], ...] = (
    ("add_decision", 20),
    ("change_officer", 16),
    ("end_decision", 14),
    ("change_provider", 10),
    ("add_person", 6),
    ("delete_person", 3),
    ("move_person", 3),
)
_AGRESSO_CHANGES: tuple[tuple[str, int], ...] = (("pay_invoice", 60), ("add_invoice", 35))
# Share of changes committed late, when the instance's late_commit_seconds is above zero.
LATE_SHARE = 0.1


async def run_mutator(world: World, instance: Instance[Any]) -> None:
    """Runs until cancelled."""
    rng = random.Random(f"mutator:{world.seed}:{instance.name}")
    changes = _PARAPLY_CHANGES if instance.kind == "paraply" else _AGRESSO_CHANGES
    names = [name for name, _ in changes]
    weights = [weight for _, weight in changes]
    while True:
        instance.changed.clear()
        rate = instance.knobs.changes_per_second
        if rate <= 0:
            await instance.changed.wait()
            continue
        try:
            await asyncio.wait_for(instance.changed.wait(), rng.expovariate(rate))
        except TimeoutError:
            pass
        else:
            # A knob changed, perhaps the rate: draw the wait again at the rate now set.
            continue
        op = rng.choices(names, weights)[0]
        late = instance.knobs.late_commit_seconds
        try:
            if late > 0 and rng.random() < LATE_SHARE:
                mutate(world, instance.name, "late_commit", {"change": op, "seconds": late})
            else:
                mutate(world, instance.name, op, {})
        except MutationError:
            # Nothing fitted this time (no one left to move, say): the next change draws again.
            continue
        except Exception:
            # A defect in one change must not stop the others; it is worth a traceback, never the data.
            log.exception("the %s change on %s failed", op, instance.name)

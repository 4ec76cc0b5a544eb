"""Every deployable service, started through the runtime in a thread of its own, for tests that drive them
from synchronous code (hypothesis, a blocking client): the services' event loop runs in that thread, and
the test talks to them over real gRPC channels on loopback.

A deployable is a package `services/<name>/` whose `main` module has a DEFINITION; all of them are started,
so a service added later is served here without a change. What one needs of another (its address) is in
DEPENDENCIES.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.common import runtime
from services.common.devissuer import DevIssuer
from services.common.runtime import Running, ServiceDefinition
from services.common.server import GrpcService

SERVICES_ROOT = Path(__file__).resolve().parents[1] / "services"
# The order they start in, and the variables that point one at another that has started already.
START_ORDER = ("directory", "mirror", "case", "fees")
DEPENDENCIES: Mapping[str, Callable[[Mapping[str, str]], dict[str, str]]] = {
    "case": lambda started: {
        "CASE_DIRECTORY_ADDRESS": started["directory"],
        "CASE_MIRROR_ADDRESS": started["mirror"],
    },
    "fees": lambda started: {
        "FEES_MIRROR_ADDRESS": started["mirror"],
        "FEES_CASE_ADDRESS": started["case"],
    },
}


def nowhere_sources(folder: Path) -> dict[str, str]:
    """The mirror's settings with its sources pointing at ports nobody listens on: it serves from what it
    stores, every source down."""
    from support.ports import free_port
    from synthcity.city import DISTRICTS

    secret = folder / "upstream-secret"
    secret.write_text("not-the-password")
    entries = [
        {
            "name": "agresso",
            "kind": "agresso",
            "url": f"http://127.0.0.1:{free_port()}",
            "api_key_file": str(secret),
        }
    ]
    entries += [
        {
            "name": f"paraply-{d.district_id}",
            "kind": "paraply",
            "district": d.district_id,
            "url": f"http://127.0.0.1:{free_port()}",
            "username": f"aldredirekt-{d.district_id}",
            "password_file": str(secret),
        }
        for d in DISTRICTS
    ]
    path = folder / "mirror-sources.json"
    path.write_text(json.dumps({"sources": entries}))
    return {
        "MIRROR_SOURCES_FILE": str(path),
        "MIRROR_GRANT_JWKS": str(folder / "case" / "grant-key.jwks.json"),
    }


def nowhere_finance(folder: Path) -> dict[str, str]:
    """The fees service's settings with the case service's grant keys, and the finance system at a port
    nobody listens on: deferrals wait in its outbox."""
    from support.ports import free_port

    secret = folder / "finance-secret"
    secret.write_text("not-the-api-key")
    return {
        "FEES_GRANT_JWKS": str(folder / "case" / "grant-key.jwks.json"),
        "FEES_FINANCE_URL": f"http://127.0.0.1:{free_port()}",
        "FEES_FINANCE_API_KEY_FILE": str(secret),
    }


def deployables() -> list[str]:
    """The names of every service package that has a main module, in start order."""
    found = sorted(p.parent.name for p in SERVICES_ROOT.glob("*/main.py"))
    return sorted(
        found, key=lambda name: START_ORDER.index(name) if name in START_ORDER else len(START_ORDER)
    )


def definition_of(name: str) -> ServiceDefinition[Any, Any]:
    module = importlib.import_module(f"services.{name}.main")
    definition: ServiceDefinition[Any, Any] = module.DEFINITION
    return definition


@dataclass
class LiveServices:
    """The started services: their addresses, what each serves, and the issuer whose tokens they trust."""

    issuer: DevIssuer
    addresses: dict[str, str]
    services: dict[str, list[GrpcService]]
    loop: asyncio.AbstractEventLoop

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        """Runs a coroutine on the services' loop, from the test's thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)


@contextmanager
def live_services(
    folder: Path, *, prepare: Callable[[str, Running[Any]], Coroutine[Any, Any, None]] | None = None
) -> Iterator[LiveServices]:
    """Starts every deployable on SQLite files under `folder`, on port 0, trusting one development issuer;
    `prepare` may load data into one once it runs. Stops them all on leaving."""
    dev_dir = folder / "dev"
    ready = threading.Event()
    stop: asyncio.Event | None = None
    started: dict[str, Running[Any]] = {}
    failure: list[BaseException] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        loop_box.append(asyncio.get_running_loop())
        try:
            for name in deployables():
                definition = definition_of(name)
                prefix = name.upper() + "_"
                env = {
                    "AUTH_DEV": "true",
                    "AUTH_DEV_DIR": str(dev_dir),
                    f"{prefix}DATABASE_URL": f"sqlite+aiosqlite:///{folder / (name + '.db')}",
                    f"{prefix}GRANT_KEY_FILE": str(folder / name / "grant-key.pem"),
                    **(nowhere_sources(folder) if name == "mirror" else {}),
                    **(nowhere_finance(folder) if name == "fees" else {}),
                    **DEPENDENCIES.get(name, lambda _: {})({n: r.address for n, r in started.items()}),
                }
                running = await runtime.start(definition, definition.load_settings(env), port=0)
                started[name] = running
                if prepare is not None:
                    await prepare(name, running)
        except BaseException as error:
            failure.append(error)
            ready.set()
            raise
        ready.set()
        await stop.wait()
        for running in reversed(list(started.values())):
            await running.stop(0)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), name="live-services", daemon=True)
    thread.start()
    ready.wait(120)
    if failure:
        thread.join(30)
        raise failure[0]
    loop = loop_box[0]
    try:
        yield LiveServices(
            issuer=DevIssuer.load_or_create(dev_dir),
            addresses={name: r.address for name, r in started.items()},
            services={name: list(r.wiring.services) for name, r in started.items()},
            loop=loop,
        )
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)

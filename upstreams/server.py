"""All the stand-ins in one asyncio loop: a uvicorn server per listener, the background mutator, and the
in-process handle tests use (`serve_all`).

`down` really closes a listener: its uvicorn server is stopped (the socket closes, connections are refused)
and a new one is started on the same port when the knob is cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from support.ports import HOST
from synthcity.care import CareCity, generate_care_city
from upstreams.apps import agresso_app, control_app, paraply_app
from upstreams.credentials import AGRESSO, CONTROL, Credentials, credentials, instance_names
from upstreams.knobs import Knobs
from upstreams.mutations import mutate
from upstreams.mutator import run_mutator
from upstreams.store import Store
from upstreams.world import Instance, World, build_world

__all__ = ["CONTROL_OFFSET", "Listener", "Running", "layout", "serve_all"]

# The control listener's port, counted from the base port.
CONTROL_OFFSET = 99
# How long a stopping listener lets requests in flight finish, in seconds.
_GRACE_S = 1


def layout(base_port: int) -> dict[str, int]:
    """Each listener's port: Agresso at the base, the Paraply instances after it, control at base + 99."""
    ports = {name: base_port + offset for offset, name in enumerate(instance_names())}
    ports[CONTROL] = base_port + CONTROL_OFFSET
    return ports


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_now = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # One process serves thirteen listeners, and signals are handled once for all of them (see
        # upstreams.__main__); each uvicorn server would otherwise install and restore its own handlers
        # over the others'.
        yield

    async def main_loop(self) -> None:
        # As uvicorn's, a tick every 0.1 s, but a stop is noticed at once rather than at the next tick:
        # tests stop and start the listeners many times, and `down` should close promptly.
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.exit_now.wait(), 0.1)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named TCP, not left at 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # answer on a kept-alive connection waits 40 ms for the client's delayed ACK (headers and body are
    # two writes).
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # The port is taken again right after the listener closed it (the `down` knob cleared).
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
        # Listening at once makes a port someone else took fail here, where it is clear what failed.
        listening.listen()
    except OSError:
        listening.close()
        raise
    return listening


class Listener:
    """One listener: a uvicorn server for `app` on host:port, which can be stopped and started again."""

    def __init__(self, name: str, app: ASGIApp, host: str, port: int) -> None:
        self.name = name
        self.app = app
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.serving:
            return
        listening = _bind(self.host, self.port)
        self.port = listening.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=_GRACE_S,
        )
        server = _Server(config)
        task = asyncio.create_task(server.serve(sockets=[listening]), name=f"listener {self.name}")
        self._server, self._task = server, task
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"the {self.name} listener stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        self._server.exit_now.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None


@dataclass
class Running:
    """The stand-ins serving: where they listen, the credentials they accept, and direct access to their
    records and knobs."""

    world: World
    host: str
    ports: Mapping[str, int]
    credentials: Credentials

    @property
    def care(self) -> CareCity:
        return self.world.care

    @property
    def names(self) -> list[str]:
        """Every listener's name: the instances, then control."""
        return [*instance_names(), CONTROL]

    def url(self, name: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.ports[name]}"

    @property
    def urls(self) -> dict[str, str]:
        return {name: self.url(name) for name in self.names}

    @property
    def control_url(self) -> str:
        return self.url(CONTROL)

    def instance(self, name: str) -> Instance[Any]:
        found = self.world.instance(name)
        if found is None:
            raise KeyError(name)
        return found

    def store(self, name: str) -> Store[Any]:
        return self.instance(name).store

    def knobs(self, name: str) -> Knobs:
        return self.instance(name).knobs

    def headers(self, name: str) -> dict[str, str]:
        """The headers that get a client in now, a rotated credential included."""
        if name == CONTROL:
            return self.credentials.headers(CONTROL)
        instance = self.instance(name)
        if instance.kind == "agresso" and instance.knobs.api_key:
            return {"X-API-Key": instance.knobs.api_key}
        if instance.kind == "paraply" and instance.knobs.password:
            rotated = Credentials(
                seed=self.credentials.seed,
                paraply_passwords={instance.district_id: instance.knobs.password},
                agresso_api_key="",
                control_token="",
            )
            return rotated.headers(name)
        return self.credentials.headers(name)

    async def set_knobs(self, name: str, **changes: Any) -> dict[str, Any]:
        """As the control API's PUT: checks and sets the knobs, and returns once the listener follows."""
        instance = self.instance(name)
        instance.knobs.update(changes, kind=instance.kind)
        await instance.settle()
        return instance.knobs.as_json()

    async def reset_knobs(self, name: str) -> dict[str, Any]:
        instance = self.instance(name)
        instance.knobs.reset(instance.defaults)
        await instance.settle()
        return instance.knobs.as_json()

    async def reset(self) -> None:
        """Back to the generated data with default knobs (see `World.reset`), every listener open."""
        self.world.reset()
        await asyncio.gather(*(instance.settle() for instance in self.world.instances.values()))

    def mutate(self, name: str, op: str, **params: Any) -> dict[str, Any]:
        """As the control API's mutations; MutationError when it cannot be made."""
        return mutate(self.world, name, op, params)


async def _warm(world: World) -> None:
    for instance in world.paraply.values():
        await instance.store.warm()
    await world.agresso.store.warm()


@contextlib.asynccontextmanager
async def serve_all(
    *,
    care: CareCity | None = None,
    seed: int = 2026,
    people: int = 30_000,
    officers: int = 400,
    secret_seed: int = 2026,
    host: str = HOST,
    base_port: int | None = None,
    ports: Mapping[str, int] | None = None,
    changes_per_second: float = 0.0,
    late_commit_seconds: float = 2.0,
    warm: bool = False,
) -> AsyncIterator[Running]:
    """Serves every stand-in in this event loop until the block ends.

    The data is `care`, or the city generated from `seed`, `people` and `officers`; pass one `care` to many
    tests to generate it once (the stores copy nothing from it but keep their own versions). Ports are
    `ports` (listener name → port) where given, else the `layout` of `base_port`, else free ones (port 0:
    `running.ports` tells which).
    `changes_per_second` is for the whole city (0 for still data, as most tests want). With `warm`, every
    record's JSON is encoded in the background once the listeners are up (the Paraply records first), so
    that no first read of a page pays for it: a few seconds of work and about 100 MB for the whole city.
    """
    care = care or generate_care_city(seed, people, officers)
    world = build_world(
        care, seed=seed, changes_per_second=changes_per_second, late_commit_seconds=late_commit_seconds
    )
    secrets = credentials(secret_seed)
    planned = layout(base_port) if base_port is not None else {}
    planned.update(ports or {})
    # Port 0 lets the system choose a free port as the listener binds it, which no other server can take
    # in between, as it could a port probed free beforehand.
    chosen = {name: planned.get(name, 0) for name in [*instance_names(), CONTROL]}
    running = Running(world=world, host=host, ports=chosen, credentials=secrets)

    listeners: dict[str, Listener] = {}
    for name in instance_names():
        instance = running.instance(name)
        app = (
            agresso_app(world, world.agresso, secrets) if name == AGRESSO else paraply_app(instance, secrets)
        )
        listeners[name] = Listener(name, app, host, chosen[name])
        instance.listener = listeners[name]
    # Filled in once the listeners have their ports; the control app reads it as it answers.
    urls: dict[str, str] = {}
    listeners[CONTROL] = Listener(CONTROL, control_app(world, secrets, urls), host, chosen[CONTROL])
    mutators: list[asyncio.Task[None]] = []
    try:
        await asyncio.gather(*(listener.start() for listener in listeners.values()))
        # Port 0 asks for any free port; the listener knows which it got.
        running.ports = {name: listener.port for name, listener in listeners.items()}
        urls.update(running.urls)
        mutators = [
            asyncio.create_task(run_mutator(world, instance), name=f"mutator {instance.name}")
            for instance in world.instances.values()
        ]
        if warm:
            mutators.append(asyncio.create_task(_warm(world), name="warming"))
        yield running
    finally:
        for task in mutators:
            task.cancel()
        for task in mutators:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(
            *(instance.close() for instance in world.instances.values()), listeners[CONTROL].stop()
        )

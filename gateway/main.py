"""`python -m gateway`: read and check the settings, log as JSON, serve on uvicorn until SIGTERM, then
drain (stop accepting, let requests in flight finish for GATEWAY_GRACE_SECONDS) and close the channels."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import uvicorn

from gateway.app import create_app
from gateway.settings import GatewaySettings
from services.common.logs import configure_logging
from services.common.runtime import run_loop
from services.common.settings import SettingsError


def load_settings(environ: Mapping[str, str] | None = None) -> GatewaySettings:
    return GatewaySettings.from_env(environ)


def server(settings: GatewaySettings) -> uvicorn.Server:
    """The uvicorn server of the app, not started; its lifespan wires the gateway."""
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        access_log=False,
        # The server's name is nobody's business.
        server_header=False,
        timeout_graceful_shutdown=int(settings.grace_seconds) or None,
    )
    return uvicorn.Server(config)


async def serve(settings: GatewaySettings) -> None:
    await server(settings).serve()


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as error:
        sys.exit(f"gateway: configuration error: {error}")
    configure_logging("gateway", settings.log_level)
    run_loop(serve(settings), settings.event_loop)

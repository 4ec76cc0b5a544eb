"""The overlays of k8s/, rendered once per session by `kubectl kustomize` (no cluster needed), and the
database the contract tests start the services against."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from scripts.k8s_check import documents, overlays, render
from support.pgserver import HOST, MISSING_BINARIES_MESSAGE, PostgresServer
from tests.k8s.database_tls import DATABASE_CA
from tests.k8s.manifests import Overlay

OVERLAY_NAMES = overlays()


@pytest.fixture(scope="session")
def rendered() -> dict[str, Overlay]:
    if shutil.which("kubectl") is None:
        message = "kubectl not found: it renders the kustomize overlays"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return {name: Overlay(name, tuple(documents(render(name)))) for name in OVERLAY_NAMES}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Here the session's server speaks TLS, as the CloudNativePG Cluster does: its certificate is signed by
    DATABASE_CA, which the tests mount where the manifests mount the Cluster's CA (`ca.crt`), so that the
    services' verify-full is tried for real. Skipped without the binaries, except in CI."""
    if not PostgresServer.available():
        if os.environ.get("CI"):
            pytest.fail(MISSING_BINARIES_MESSAGE, pytrace=False)
        pytest.skip(MISSING_BINARIES_MESSAGE)
    certificate, key = DATABASE_CA.server(HOST)
    with PostgresServer(
        settings={"ssl": "on", "ssl_cert_file": "'server.crt'", "ssl_key_file": "'server.key'"},
        files={"server.crt": certificate, "server.key": key},
    ) as server:
        yield server

"""A throwaway PostgreSQL server for one test session.

The cluster lives in a temporary folder and is tuned for speed, not durability: it holds nothing that
outlives the session. PostgreSQL refuses to run as root, so under root the server runs as the `postgres`
system user, which owns the folder.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, Self

import asyncpg

from support.ports import free_port

MISSING_BINARIES_MESSAGE = "PostgreSQL server binaries not found; install Debian's postgresql package"

HOST = "127.0.0.1"
SUPERUSER = "postgres"
_SERVER_USER = "postgres"
_REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
_DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_START_ATTEMPTS = 3

# Durability settings are off because the cluster is deleted at the end of the session anyway.
_SETTINGS: dict[str, str] = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
}


class PostgresUnavailable(RuntimeError):
    """The server binaries or the user to run them as are missing."""


class PostgresStartFailed(RuntimeError):
    """The server did not come up; the message carries the tail of its log."""


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None.

    They must come from one folder because initdb and pg_ctl run the `postgres` found beside them.
    """
    candidates: list[Path] = []
    for name in _REQUIRED_BINARIES:
        found = shutil.which(name)
        if found is not None:
            candidates.append(Path(found).resolve().parent)
    candidates.extend(sorted(Path("/").glob(_DEBIAN_BIN_GLOB.lstrip("/")), key=_major_version, reverse=True))
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in _REQUIRED_BINARIES):
            return folder
    return None


def _major_version(bin_dir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin: compare "15" as a number so that 9.6 sorts below 15.
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name))


def run_blocking(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion from sync code, even while an event loop runs in this thread (session
    fixtures may be set up while a test's loop runs): a thread has a loop of its own."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=target, name="pgserver-admin")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]


class PostgresServer:
    """One PostgreSQL cluster on 127.0.0.1 and a free port, with trust authentication for `postgres`."""

    def __init__(
        self, *, settings: Mapping[str, str] | None = None, files: Mapping[str, bytes] | None = None
    ) -> None:
        """`settings` are added to postgresql.conf; `files` are written into the data folder, readable only
        by the server (a TLS certificate and key, for instance)."""
        self.extra_settings = dict(settings or {})
        self.files = dict(files or {})
        self.host = HOST
        self.port = 0
        self._root: Path | None = None
        self._bin_dir: Path | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------------------------

    @staticmethod
    def available() -> bool:
        """Whether this machine can run a server: binaries present and, under root, a user to run them."""
        return find_bin_dir() is not None and (os.geteuid() != 0 or _server_user_exists())

    def start(self) -> None:
        if self._started:
            return
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                f"{MISSING_BINARIES_MESSAGE} (looked on PATH and in {_DEBIAN_BIN_GLOB} "
                f"for {', '.join(_REQUIRED_BINARIES)})"
            )
        if os.geteuid() == 0 and not _server_user_exists():
            raise PostgresUnavailable(
                f"PostgreSQL refuses to run as root and there is no {_SERVER_USER!r} system user to run it as"
            )
        self._bin_dir = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="pgtest-"))
        atexit.register(self.stop)
        try:
            if os.geteuid() == 0:
                account = pwd.getpwnam(_SERVER_USER)
                os.chown(self._root, account.pw_uid, account.pw_gid)
            self._start_watchdog()
            self._run(
                "initdb",
                "--pgdata",
                str(self._data_dir),
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            self._write_files()
            self._start_postmaster()
        except BaseException:
            self.stop()
            raise
        self._started = True

    def stop(self) -> None:
        """Stop the server and delete its folder; safe to call at any point, any number of times."""
        self._started = False
        root, self._root = self._root, None
        if root is None:
            return
        atexit.unregister(self.stop)
        if (root / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "--pgdata", str(root / "data"), "--mode=immediate", "--wait", "stop")
            except subprocess.CalledProcessError:
                _kill_postmaster(root / "data")
        shutil.rmtree(root, ignore_errors=True)
        if self._watchdog is not None:
            # Closing its stdin tells the watchdog we are done; it finds nothing left to clean up.
            if self._watchdog.stdin is not None:
                self._watchdog.stdin.close()
            self._watchdog.wait(timeout=30)
            self._watchdog = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def folder(self) -> Path | None:
        """The temporary folder holding the cluster while the server runs."""
        return self._root

    # -- databases ---------------------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database, empty or as a copy of `template`, and return its SQLAlchemy URL."""
        copy = f' TEMPLATE "{_checked_name(template)}"' if template else ""
        self._execute(f'CREATE DATABASE "{_checked_name(name)}"{copy}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, cutting off any connection a test left open."""
        self._execute(f'DROP DATABASE IF EXISTS "{_checked_name(name)}" WITH (FORCE)')

    def _execute(self, statement: str) -> None:
        if not self._started:
            raise RuntimeError("the PostgreSQL server is not running; call start() first")

        async def execute() -> None:
            connection = await asyncpg.connect(
                host=self.host, port=self.port, user=SUPERUSER, database="postgres"
            )
            try:
                await connection.execute(statement)
            finally:
                await connection.close()

        run_blocking(execute())

    # -- internals ---------------------------------------------------------------------------------------

    @property
    def _data_dir(self) -> Path:
        assert self._root is not None
        return self._root / "data"

    def _start_postmaster(self) -> None:
        assert self._root is not None
        config = self._data_dir / "postgresql.conf"
        base_config = config.read_text()
        log = self._root / "server.log"
        for attempt in range(1, _START_ATTEMPTS + 1):
            # The port is free when probed but may be taken before the server binds it; then try another.
            self.port = free_port()
            settings = {
                **_SETTINGS,
                **self.extra_settings,
                "port": str(self.port),
                "unix_socket_directories": f"'{self._root}'",
            }
            config.write_text(base_config + "".join(f"{key} = {value}\n" for key, value in settings.items()))
            try:
                self._run(
                    "pg_ctl",
                    "--pgdata",
                    str(self._data_dir),
                    f"--log={log}",
                    "--wait",
                    "--timeout=60",
                    "start",
                )
                return
            except subprocess.CalledProcessError as error:
                log_tail = _tail(log)
                if attempt < _START_ATTEMPTS and "could not bind" in log_tail:
                    continue
                raise PostgresStartFailed(
                    f"PostgreSQL did not start (pg_ctl exit {error.returncode}):\n{log_tail}"
                ) from error

    def _write_files(self) -> None:
        for name, content in self.files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"a file name of the data folder, not a path: {name!r}")
            path = self._data_dir / name
            path.write_bytes(content)
            path.chmod(0o600)
            if os.geteuid() == 0:
                account = pwd.getpwnam(_SERVER_USER)
                os.chown(path, account.pw_uid, account.pw_gid)

    def _command(self, binary: str, *args: str) -> list[str]:
        assert self._bin_dir is not None
        command = [str(self._bin_dir / binary), *args]
        if os.geteuid() == 0:
            return ["runuser", "-u", _SERVER_USER, "--", *command]
        return command

    def _run(self, binary: str, *args: str) -> None:
        # Run from "/": the server user may not be allowed into the caller's working directory.
        result = subprocess.run(
            self._command(binary, *args), cwd="/", capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, result.args, output=result.stdout, stderr=result.stderr
            )

    def _start_watchdog(self) -> None:
        """Start a process that stops the server once this process is gone, however it ends.

        atexit covers ordinary exits; the watchdog also covers a kill or a crash. It waits for end of file
        on its stdin, which the kernel delivers when our end of the pipe closes.
        """
        assert self._root is not None
        stop = self._command("pg_ctl", "--pgdata", str(self._data_dir), "--mode=immediate", "stop")
        script = f"cat >/dev/null; {shlex.join(stop)} >/dev/null 2>&1; rm -rf {shlex.quote(str(self._root))}"
        self._watchdog = subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            # Its own session keeps a Ctrl-C aimed at the test run from ending it before its work is due.
            start_new_session=True,
        )


def _server_user_exists() -> bool:
    try:
        pwd.getpwnam(_SERVER_USER)
    except KeyError:
        return False
    return True


def _checked_name(name: str) -> str:
    # The name goes into SQL as a quoted identifier, so it must be plain.
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"database name must match {_DATABASE_NAME.pattern}: {name!r}")
    return name


def _kill_postmaster(data_dir: Path) -> None:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError):
        pass


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:])

"""A component for run_local's tests: it listens on a port and can fail the ways a service does.

python -m tests.e2e.scripts.stand_in --port N --pid-file F [--log-lines N] [--never-listen]
                                     [--die-after-probe CODE]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

from support.ports import HOST


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pid-file", type=Path, required=True)
    parser.add_argument("--log-lines", type=int, default=1, help="lines written before listening")
    parser.add_argument("--never-listen", action="store_true", help="start, but never come up")
    parser.add_argument("--die-after-probe", type=int, metavar="CODE", help="exit soon after it is up")
    arguments = parser.parse_args()
    arguments.pid_file.write_text(str(os.getpid()))
    for number in range(1, arguments.log_lines + 1):
        print(f"stand-in line {number}", flush=True)
    if arguments.never_listen:
        time.sleep(3600)
        return
    with socket.create_server((HOST, arguments.port)) as server:
        while True:
            connection, _ = server.accept()
            connection.close()
            if arguments.die_after_probe is not None:
                # Long enough for make run to have seen it up, so that it dies while running.
                time.sleep(1)
                print("stand-in lost its database", flush=True)
                sys.exit(arguments.die_after_probe)


if __name__ == "__main__":
    main()

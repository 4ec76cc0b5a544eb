"""`make run`'s component table: each component listens on the port make run checks and waits on."""

from __future__ import annotations

from scripts.run_local import COMPONENTS


def test_the_smtp_sink_is_told_the_port_its_variable_names() -> None:
    [sink] = [component for component in COMPONENTS if component.name == "smtp-sink"]

    command = sink.command({"SMTP_SINK_PORT": "2600"})

    assert command[command.index("--port") + 1] == "2600"
    assert sink.port({"SMTP_SINK_PORT": "2600"}) == 2600

"""The event loop a serving process runs on (EVENT_LOOP)."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from services.common.runtime import run_loop


async def _running_loop() -> asyncio.AbstractEventLoop:
    await asyncio.sleep(0)
    return asyncio.get_running_loop()


def test_a_process_runs_on_uvloop_unless_told_otherwise():
    assert isinstance(run_loop(_running_loop()), uvloop.Loop)


def test_the_standard_librarys_loop_is_there_to_go_back_to():
    loop = run_loop(_running_loop(), "asyncio")

    assert isinstance(loop, asyncio.BaseEventLoop)
    assert not isinstance(loop, uvloop.Loop)


def test_the_loop_is_closed_once_the_coroutine_is_done_and_its_failure_comes_through():
    async def fails() -> None:
        raise LookupError("from inside the loop")

    with pytest.raises(LookupError, match="from inside the loop"):
        run_loop(fails())
    assert run_loop(_running_loop()).is_closed()


async def test_the_suites_own_async_tests_run_on_the_loop_the_services_run_on():
    assert isinstance(asyncio.get_running_loop(), uvloop.Loop)

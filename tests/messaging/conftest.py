"""Helpers for the message-bus tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.002)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(lambda: ..., timeout)``: poll a condition on the running loop."""
    return _until

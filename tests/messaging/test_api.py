"""The public surface of neuralcore.messaging: exported names, cheap import, backend report."""

from __future__ import annotations

import subprocess
import sys

import neuralcore
import neuralcore.messaging as messaging
from neuralcore.messaging import BusConfig, MessageBus


def test_exported_names_are_pinned() -> None:
    assert messaging.__all__ == (
        "Bridge",
        "BridgeDirection",
        "BusConfig",
        "BusHealth",
        "ChannelConfig",
        "ChannelMetrics",
        "Codec",
        "DeadLetter",
        "Durability",
        "HistogramSnapshot",
        "JsonCodec",
        "Message",
        "MessageBus",
        "MsgpackCodec",
        "Outcome",
        "Overflow",
        "Priority",
        "Selector",
        "Subscription",
        "Tap",
    )
    for name in messaging.__all__:
        assert getattr(messaging, name) is not None


def test_import_is_cheap() -> None:
    code = (
        "import sys, neuralcore.messaging; "
        "print(sorted(m for m in ('msgspec', 'sqlite3', 'numpy', 'yaml') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_backend_info_reports_msgspec() -> None:
    info = neuralcore.backend_info()["messaging"]
    assert (info.engine, info.backend, info.library) == ("messaging", "native", "msgspec")
    assert info.version


def test_python_backend_env_selects_json(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEURALCORE_BACKEND", "python")
    assert neuralcore.backend_info()["messaging"].library == "stdlib json"
    assert MessageBus(BusConfig(codec="auto")).codec.name == "json"
    assert MessageBus(BusConfig(codec="msgpack")).codec.name == "msgpack"  # explicit choice wins


def test_bus_works_without_msgspec(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = f"""
import sys, asyncio
sys.modules["msgspec"] = None  # as if not installed
import neuralcore
from neuralcore.messaging import MessageBus
async def main():
    bus = MessageBus(persistence_path={str(tmp_path / "b.db")!r})
    async with bus:
        bus.create_channel("p", persistent=True)
        got = []
        bus.subscribe("p", lambda m: got.append(m.payload))
        await bus.publish_async("p", {{"b": b"raw", "n": [1, 2]}})
        await bus.drain()
        print(bus.codec.name, neuralcore.backend_info()["messaging"].detail, got)
asyncio.run(main())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "json msgspec not installed [{'b': b'raw', 'n': [1, 2]}]"

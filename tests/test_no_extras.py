"""The package imports and the vector API works with no optional dependency installed.

A fresh venv (no pip, so nothing but the stdlib) gets the repository's ``src`` through a
``.pth`` file; a child process imports neuralcore, calls every vector function on lists
and checks the results and that the pure-Python backend is the one reported. Features that
need an extra fail with one line naming it, never a traceback.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

SCRIPT = textwrap.dedent(
    """
    import importlib.util, math, sys
    assert importlib.util.find_spec("numpy") is None, "numpy leaked into the bare venv"
    import neuralcore
    from neuralcore import (
        VectorOps, cosine_distance, cosine_similarity, dot, euclidean_distance,
        normalize, sqeuclidean_distance, top_k,
    )
    from neuralcore.errors import DimensionMismatchError, NonFiniteError
    assert neuralcore.backend_info()["vectors"].backend == "python"
    assert VectorOps().backend == "python"
    a, b, m = [3.0, 4.0], [4.0, 3.0], [[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]
    assert math.isclose(cosine_similarity(a, b), 24 / 25)
    assert math.isclose(cosine_distance(a, b), 1 / 25)
    assert dot(a, b) == 24.0
    assert math.isclose(euclidean_distance(a, b), math.sqrt(2))
    assert sqeuclidean_distance(a, b) == 2.0
    assert cosine_similarity([0.0, 0.0], a) == 0.0
    assert normalize(a) == [0.6, 0.8]
    rows = cosine_similarity(a, m)
    assert isinstance(rows, list) and [round(r, 6) for r in rows] == [0.6, 0.8, 1.0]
    idx, scores = top_k(a, m, 2)
    assert idx == [2, 1] and math.isclose(scores[0], 1.0)
    assert len(cosine_similarity(m, m)) == 3
    for bad, error in (([1.0], DimensionMismatchError), ([math.nan, 1.0], NonFiniteError)):
        try:
            dot(bad, a)
        except error:
            pass
        else:
            sys.exit(f"{bad!r} did not raise {error.__name__}")
    print("ok")
    """
)


BUS_AND_ENGINES = textwrap.dedent(
    """
    import asyncio, importlib.util, sys, tempfile, os
    assert importlib.util.find_spec("msgspec") is None
    import neuralcore
    from neuralcore import HNSWIndex, MessageBus, MissingDependencyError
    for make in (lambda: HNSWIndex(4), lambda: neuralcore.EmbeddingEngine):
        try:
            make()
        except MissingDependencyError as err:
            assert "pip install" in str(err), err
        else:
            sys.exit("expected MissingDependencyError")
    info = neuralcore.backend_info()
    assert info["messaging"].library == "stdlib json"
    assert info["embedding"].library == "none" and "embedding]" in info["embedding"].detail

    async def main(path):
        got = []
        async with MessageBus(persistence_path=path) as bus:
            bus.create_channel("jobs", persistent=True)
            bus.subscribe("jobs", lambda m: got.append(m.payload))
            for i in range(3):
                await bus.publish_async("jobs", {"n": i}, priority=75 - 25 * i)
            await bus.drain()
        return got

    with tempfile.TemporaryDirectory() as tmp:
        got = asyncio.run(main(os.path.join(tmp, "bus.db")))
    assert sorted(m["n"] for m in got) == [0, 1, 2], got
    print("ok")
    """
)


def _bare_python(tmp_path: Path) -> Path:
    env_dir = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "neuralcore_src.pth").write_text(f"{SRC}\n", encoding="utf-8")
    assert sysconfig.get_paths()["purelib"] != purelib  # really a different environment
    assert sys.prefix != str(env_dir)
    return python


@pytest.mark.integration
@pytest.mark.parametrize("script", [SCRIPT, BUS_AND_ENGINES], ids=["vectors", "bus-and-engines"])
def test_works_without_optional_dependencies(tmp_path: Path, script: str) -> None:
    result = subprocess.run(
        [str(_bare_python(tmp_path)), "-c", script],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("argv", "extra"),
    [(["demo"], "embedding"), (["bench", "vectors"], "vectors"), (["models", "list"], "embedding")],
    ids=["demo", "bench-vectors", "models"],
)
def test_cli_names_the_missing_extra_in_one_line(
    tmp_path: Path, argv: list[str], extra: str
) -> None:
    result = subprocess.run(
        [str(_bare_python(tmp_path)), "-m", "neuralcore", *argv],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("neuralcore: error: ")
    assert result.stderr.endswith(f'pip install "neuralcore-runtime[{extra}]"\n')
    assert result.stderr.count("\n") == 1, result.stderr


@pytest.mark.integration
def test_missing_extra_on_import_is_one_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(_bare_python(tmp_path)), "-c", "from neuralcore import EmbeddingEngine"],
        capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.count("Traceback") == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("neuralcore.errors.MissingDependencyError: numpy is required")
    assert last.endswith('pip install "neuralcore-runtime[embedding]"')

"""``neuralcore migrate``: rewrites only the replaced imports, safely and idempotently."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from neuralcore.cli import main as cli_main
from neuralcore.compat.migrate import main, migrate_source

Capture = pytest.CaptureFixture[str]


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def test_rewrites_a_fully_replaced_import() -> None:
    new, n, notes = migrate_source("from core.messaging.NCB import NeuralCognitiveBus, Message\n")
    assert new == "from neuralcore.compat.atlas import Message, NeuralCognitiveBus\n"
    assert (n, notes) == (1, [])


def test_splits_kept_and_moved_names_keeping_aliases_and_indent() -> None:
    src = _src(
        """
        def f():
            from modules.storage.retrieval.cache import EmbeddingCache, QueryResultCache as Q  # hi
            return Q
        """
    )
    new, n, _ = migrate_source(src)
    assert n == 1
    assert new == _src(
        """
        def f():
            from neuralcore.compat.atlas import QueryResultCache as Q
            from modules.storage.retrieval.cache import EmbeddingCache  # hi
            return Q
        """
    )


def test_renamed_export_keeps_the_local_name() -> None:
    new, _, _ = migrate_source("from core.messaging import AgentBus, NCBMessage\n")
    assert new == (
        "from neuralcore.compat.atlas import Message as NCBMessage\n"
        "from core.messaging import AgentBus\n"
    )


def test_relative_import_is_resolved_from_the_package() -> None:
    src = "from .NCB import (\n    NeuralCognitiveBus,\n    ChannelConfig as Cfg,\n)\nx = 1\n"
    new, n, _ = migrate_source(src, package="core.messaging")
    assert n == 1
    assert (
        new
        == "from neuralcore.compat.atlas import ChannelConfig as Cfg, NeuralCognitiveBus\nx = 1\n"
    )
    assert migrate_source(src, package="other.pkg")[1] == 0


def test_unrelated_and_star_imports_are_left_alone() -> None:
    src = "import os\nfrom core.messaging.NCB import *\nfrom json import loads\n"
    assert migrate_source(src) == (src, 0, [])


def test_plain_import_gets_a_note_not_a_rewrite() -> None:
    src = "import core.messaging.NCB as ncb\n"
    new, n, notes = migrate_source(src)
    assert (new, n) == (src, 0)
    assert "import core.messaging.NCB" in notes[0]


def test_statement_sharing_a_line_is_skipped_with_a_note() -> None:
    src = "import os; from core.messaging.NCB import Message\n"
    new, n, notes = migrate_source(src)
    assert (new, n) == (src, 0)
    assert "shares its line" in notes[0]


def test_long_result_lines_are_wrapped() -> None:
    names = ", ".join(
        ["NeuralCognitiveBus", "ChannelConfig", "SubscriberConfig", "Message", "Plugin"]
    )
    new, _, _ = migrate_source(f"from core.messaging.NCB import {names}, SecurityConfig\n")
    assert all(len(line) <= 99 for line in new.splitlines())
    assert new.startswith("from neuralcore.compat.atlas import (\n    ChannelConfig,\n")
    compile(new, "x", "exec")


def test_syntax_error_raises() -> None:
    with pytest.raises(SyntaxError):
        migrate_source("def (:\n")


def _tree(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    (app / "core" / "messaging").mkdir(parents=True)
    (app / "core" / "__init__.py").write_text("")
    (app / "core" / "messaging" / "__init__.py").write_text("")
    (app / "core" / "messaging" / "agent_bus.py").write_text(
        "from .NCB import NeuralCognitiveBus\nfrom .channels import X\n"
    )
    (app / "modules" / "storage").mkdir(parents=True)  # namespace package: no __init__
    (app / "modules" / "storage" / "rag.py").write_text(
        "from ..storage.chunking import cosine_similarity\n"
    )
    (app / "broken.py").write_text("from core.messaging.NCB import Message\ndef (:\n")
    (app / "latin1.py").write_bytes(b"# \xe9\nfrom core.messaging.NCB import Message\n")
    (app / ".venv").mkdir()
    (app / ".venv" / "dep.py").write_text("from core.messaging.NCB import Message\n")
    return app


def test_directory_run_rewrites_resolves_and_skips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _tree(tmp_path)
    broken = (app / "broken.py").read_bytes()
    assert main([str(app)]) == 0
    out, err = capsys.readouterr()
    assert (app / "core/messaging/agent_bus.py").read_text() == (
        "from neuralcore.compat.atlas import NeuralCognitiveBus\nfrom .channels import X\n"
    )
    assert (app / "modules/storage/rag.py").read_text() == (
        "from neuralcore.compat.atlas import cosine_similarity\n"
    )
    assert (app / "broken.py").read_bytes() == broken
    assert (app / "latin1.py").read_bytes().startswith(b"# \xe9")
    assert (app / ".venv/dep.py").read_text().startswith("from core.messaging.NCB")
    assert "+++ b/core/messaging/agent_bus.py" in out
    assert "-from .NCB import NeuralCognitiveBus" in out
    assert "skipped" in err
    assert "broken.py" in err
    assert "latin1.py" in err
    assert "rewrote 2 statement(s) in 2 of" in err
    # idempotent: a second run changes nothing and prints no diff
    assert main([str(app)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert "rewrote 0 statement(s)" in err


def test_dry_run_prints_the_diff_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _tree(tmp_path)
    before = {p: p.read_bytes() for p in app.rglob("*.py")}
    assert main([str(app), "--dry-run"]) == 0
    out, err = capsys.readouterr()
    assert "+from neuralcore.compat.atlas import NeuralCognitiveBus" in out
    assert "would rewrite 2 statement(s)" in err
    assert {p: p.read_bytes() for p in app.rglob("*.py")} == before


def test_single_file_and_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "one.py"
    f.write_text("from modules.storage.embeddings import HuggingFaceEmbeddingProvider\n")
    assert main([str(f)]) == 0
    assert f.read_text() == "from neuralcore.compat.atlas import HuggingFaceEmbeddingProvider\n"
    assert "+++ b/one.py" in capsys.readouterr().out
    assert main([str(tmp_path / "nope")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_routes_to_migrate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "one.py"
    f.write_text("from core.messaging.NCB import Plugin\n")
    assert cli_main(["migrate", str(f), "--dry-run"]) == 0
    assert "+from neuralcore.compat.atlas import Plugin" in capsys.readouterr().out
    assert f.read_text() == "from core.messaging.NCB import Plugin\n"


def test_comments_inside_a_split_statement_are_kept() -> None:
    src = _src(
        """
        from modules.storage.retrieval.cache import (
            # Data classes
            CacheEntry,
            # Caches
            EmbeddingCache,
            QueryResultCache,  # semantic
        )
        """
    )
    new, n, _ = migrate_source(src)
    assert n == 1
    assert new == _src(
        """
        from neuralcore.compat.atlas import QueryResultCache  # semantic
        from modules.storage.retrieval.cache import (
            # Data classes
            CacheEntry,
            # Caches
            EmbeddingCache,
        )
        """
    )
    compile(new, "x", "exec")


def test_comments_of_a_fully_moved_statement_are_kept() -> None:
    src = "from core.messaging.NCB import (\n    # the bus\n    NeuralCognitiveBus,\n)\n"
    new, _, _ = migrate_source(src)
    assert new == "# the bus\nfrom neuralcore.compat.atlas import NeuralCognitiveBus\n"


def test_moved_names_are_sorted_isort_style() -> None:
    new, _, _ = migrate_source("from core.messaging.NCB import Plugin, ChannelConfig, Message\n")
    assert new == "from neuralcore.compat.atlas import ChannelConfig, Message, Plugin\n"


def test_module_defining_a_cosine_loop_gets_it_rebound_once() -> None:
    src = "def _cosine_score(a, b):\n    return 0.0\n"
    module = "modules.Tools.providers.vector_store.faiss"
    new, n, _ = migrate_source(src, module=module)
    assert n == 1
    assert new.startswith(src)
    assert "from neuralcore.compat.atlas import accelerated as _nc_accelerated" in new
    assert new.endswith("_cosine_score = _nc_accelerated(_cosine_score)\n")
    namespace: dict[str, object] = {}
    exec(compile(new, "faiss.py", "exec"), namespace)
    assert getattr(namespace["_cosine_score"], "__wrapped__", None) is not None
    assert migrate_source(new, module=module) == (new, 0, [])
    assert migrate_source(src, module="other")[1] == 0


def test_tests_are_left_alone_unless_asked(tmp_path: Path, capsys: Capture) -> None:
    app = tmp_path / "app"
    (app / "tests" / "rag").mkdir(parents=True)
    line = "from core.messaging.NCB import Message\n"
    for rel in ("tests/rag/test_x.py", "tests/conftest.py", "test_top.py", "lib.py"):
        (app / rel).write_text(line)
    assert main([str(app)]) == 0
    assert (app / "lib.py").read_text() != line
    for rel in ("tests/rag/test_x.py", "tests/conftest.py", "test_top.py"):
        assert (app / rel).read_text() == line
    assert main([str(app), "--include-tests"]) == 0
    assert (app / "tests/rag/test_x.py").read_text() != line
    capsys.readouterr()

"""``neuralcore migrate``: rewrites only the replaced imports, safely and idempotently."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path
from typing import Any

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


# Stand-ins shaped like ATLAS's two cosine loops written as methods (HEAD f22472e):
# core/services/conversations.py (a staticmethod with its own edge rules) and
# modules/storage/evaluation/evaluator.py (a regular method of RelevancyCalculator).
_CONVERSATIONS = _src(
    '''
    import math
    from typing import Sequence


    class ConversationService:
        """Conversation search."""

        def score(self, query: Sequence[float], row: Sequence[float]) -> float:
            return self._cosine_similarity(query, row)  # the caller ATLAS has

        @staticmethod
        def _cosine_similarity(left: Sequence[float], right: Sequence[float]) -> float:
            if not left or not right:
                return 0.0
            try:
                dot = sum(a * b for a, b in zip(left, right))
                left_norm = math.sqrt(sum(a * a for a in left))
                right_norm = math.sqrt(sum(b * b for b in right))
            except Exception:
                return 0.0  # odd components score 0.0
            if left_norm <= 0 or right_norm <= 0:
                return 0.0
            return dot / (left_norm * right_norm)
    '''
)
_EVALUATOR = _src(
    '''
    import math
    from typing import List


    class RelevancyCalculator:
        def _cosine_similarity(self, vec1: List[float], vec2: List[float]) -> float:
            """Calculate cosine similarity between two vectors."""
            dot_product = sum(a * b for a, b in zip(vec1, vec2))
            norm1 = math.sqrt(sum(a * a for a in vec1))
            norm2 = math.sqrt(sum(b * b for b in vec2))

            if norm1 == 0 or norm2 == 0:
                return 0.0

            return dot_product / (norm1 * norm2)


    class AnswerSimilarityCalculator:
        def __init__(self):
            self._relevancy_calc = RelevancyCalculator()

        def similarity(self, a, b):
            return self._relevancy_calc._cosine_similarity(a, b)
    '''
)
_CONV_MODULE = "core.services.conversations"
_EVAL_MODULE = "modules.storage.evaluation.evaluator"


def _load(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "standin"}
    exec(compile(source, "standin.py", "exec"), namespace)
    return namespace


def _pair(dim: int, seed: int) -> tuple[list[float], list[float]]:
    rnd = random.Random(seed)
    return [rnd.gauss(0, 1) for _ in range(dim)], [rnd.gauss(0, 1) for _ in range(dim)]


def test_static_method_loop_is_rebound_after_its_class_and_stays_static() -> None:
    new, n, notes = migrate_source(_CONVERSATIONS, module=_CONV_MODULE)
    assert (n, notes) == (1, [])
    assert new.startswith(_CONVERSATIONS)  # class body, comments and all, byte for byte
    assert "from neuralcore.compat.atlas import accelerated as _nc_accelerated" in new
    assert "staticmethod(_nc_accelerated(ConversationService._cosine_similarity))" in new
    assert max(len(line) for line in new.splitlines()) <= 99
    original = _load(_CONVERSATIONS)["ConversationService"]._cosine_similarity
    cls = _load(new)["ConversationService"]
    assert isinstance(cls.__dict__["_cosine_similarity"], staticmethod)
    assert cls._cosine_similarity.__wrapped__ is not None
    service = cls()
    for dim in (16, 384, 1536):
        a, b = _pair(dim, dim)
        want = original(a, b)
        assert cls._cosine_similarity(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert service.score(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)
    # the loop's own edge rules survive: empty, zero, odd components, zip's truncation
    assert service.score([], [1.0] * 20) == 0.0
    assert service.score([0.0] * 20, [1.0] * 20) == 0.0
    assert service.score(["x"] * 20, [1.0] * 20) == 0.0
    assert service.score(["1.0"] * 20, [1.0] * 20) == 0.0  # numpy would parse these
    assert service.score([1.0] * 20, [1.0] * 21) == original([1.0] * 20, [1.0] * 21)
    assert service.score([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert migrate_source(new, module=_CONV_MODULE) == (new, 0, [])


def test_regular_method_loop_is_rebound_as_a_method() -> None:
    new, n, notes = migrate_source(_EVALUATOR, module=_EVAL_MODULE)
    assert (n, notes) == (1, [])
    assert new.startswith(_EVALUATOR)
    assert new.endswith(
        "RelevancyCalculator._cosine_similarity = (\n"
        "    _nc_accelerated(RelevancyCalculator._cosine_similarity, method=True)\n)\n"
    )
    loaded, plain = _load(new), _load(_EVALUATOR)
    method = loaded["RelevancyCalculator"].__dict__["_cosine_similarity"]
    assert not isinstance(method, staticmethod | classmethod)
    assert method.__wrapped__ is not None
    calc, user = loaded["RelevancyCalculator"](), loaded["AnswerSimilarityCalculator"]()
    reference = plain["RelevancyCalculator"]()
    for dim in (16, 384):
        a, b = _pair(dim, 7 * dim)
        want = reference._cosine_similarity(a, b)
        assert calc._cosine_similarity(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)
        assert user.similarity(a, b) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert calc._cosine_similarity([0.0] * 32, [1.0] * 32) == 0.0
    assert calc._cosine_similarity([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    with pytest.raises(TypeError):  # the loop's own error for odd components
        calc._cosine_similarity(["x"] * 20, [1.0] * 20)
    assert migrate_source(new, module=_EVAL_MODULE) == (new, 0, [])


def test_method_rebinds_are_the_originals_with_the_switch_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEURALCORE_COMPAT", "off")
    conv = _load(migrate_source(_CONVERSATIONS, module=_CONV_MODULE)[0])["ConversationService"]
    assert not hasattr(conv._cosine_similarity, "__wrapped__")
    assert isinstance(conv.__dict__["_cosine_similarity"], staticmethod)
    ev = _load(migrate_source(_EVALUATOR, module=_EVAL_MODULE)[0])["RelevancyCalculator"]
    assert not hasattr(ev._cosine_similarity, "__wrapped__")


def test_method_loops_in_other_shapes_get_a_note_and_are_left_alone() -> None:
    for decorator in ("@classmethod\n    ", "@property\n    ", "@functools.cache\n    "):
        src = _EVALUATOR.replace("def _cosine_similarity", f"{decorator}def _cosine_similarity")
        new, n, notes = migrate_source(src, module=_EVAL_MODULE)
        assert (new, n) == (src, 0)
        assert len(notes) == 1
        assert "left alone" in notes[0]
    two_args = _EVALUATOR.replace("self, vec1: List[float], vec2", "self, vec1")
    assert migrate_source(two_args, module=_EVAL_MODULE)[1] == 0
    for signature in ("self, vec1, vec2, scale=1.0", "self, vec1, *vecs", "self, vec1, vec2=()"):
        odd = _EVALUATOR.replace("self, vec1: List[float], vec2: List[float]", signature)
        assert migrate_source(odd, module=_EVAL_MODULE)[1] == 0, signature
    three = _CONVERSATIONS.replace("left: Sequence[float], right", "left, middle, right")
    assert migrate_source(three, module=_CONV_MODULE)[1] == 0
    other_class = _EVALUATOR.replace("class RelevancyCalculator", "class Renamed")
    assert migrate_source(other_class, module=_EVAL_MODULE)[1] == 0
    assert migrate_source(_EVALUATOR, module="modules.storage.evaluation.dataset")[1] == 0


def test_a_file_migrated_before_gets_only_the_missing_rebind() -> None:
    marked = migrate_source(_CONVERSATIONS, module=_CONV_MODULE)[0]
    combined = marked + "\n\n" + _EVALUATOR  # an old block present, the method not rebound
    new, n, _ = migrate_source(combined, module=_EVAL_MODULE)
    assert n == 1
    assert new.startswith(combined)
    assert new.count("import accelerated as _nc_accelerated") == 1
    assert "method=True" in new[len(combined) :]
    assert migrate_source(new, module=_EVAL_MODULE) == (new, 0, [])


def test_directory_run_rebinds_atlas_methods_and_leaves_their_tests(tmp_path: Path) -> None:
    app = tmp_path / "ATLAS"
    files = {
        "core/__init__.py": "",
        "core/services/__init__.py": "",
        "core/services/conversations.py": _CONVERSATIONS,
        "modules/__init__.py": "",
        "modules/storage/__init__.py": "",
        "modules/storage/evaluation/__init__.py": "from .evaluator import RelevancyCalculator\n",
        "modules/storage/evaluation/evaluator.py": _EVALUATOR,
        "tests/services/test_conversations_service.py": _CONVERSATIONS,
    }
    for rel, text in files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(text)
    assert main([str(app)]) == 0
    changed = {rel for rel, text in files.items() if (app / rel).read_text() != text}
    assert changed == {"core/services/conversations.py", "modules/storage/evaluation/evaluator.py"}
    snapshot = {rel: (app / rel).read_text() for rel in files}
    assert main([str(app)]) == 0
    assert {rel: (app / rel).read_text() for rel in files} == snapshot

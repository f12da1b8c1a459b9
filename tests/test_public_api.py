"""The public surface is pinned: a name cannot appear or vanish by accident."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import neuralcore
import neuralcore.errors

EXPECTED = {
    # engines
    "EmbeddingEngine", "VectorOps", "MessageBus", "HNSWIndex", "Corpus",
    # vectors
    "cosine_similarity", "cosine_distance", "dot", "euclidean_distance",
    "sqeuclidean_distance", "normalize", "top_k",
    # embedding
    "EmbeddingCache", "EmbeddingConfig", "ModelInfo", "convert_model",
    # messaging
    "BusConfig", "ChannelConfig", "DeadLetter", "Message", "Priority", "Subscription",
    # core
    "BackendInfo", "backend_info", "__version__",
    "NeuralcoreError", "ConfigError", "InvalidInputError", "DimensionMismatchError",
    "NonFiniteError", "InputTypeError", "MissingDependencyError", "IndexFileError",
    "KeyNotFoundError", "ModelError", "ModelNotFoundError", "SerializationError",
    "MessagingError", "ChannelNotFoundError", "BusClosedError", "QueueFullError",
    "RateLimitedError", "AuthorizationError", "RequestTimeoutError", "PersistenceError",
    "BridgeConnectionError",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(neuralcore.__all__) == EXPECTED
    assert len(neuralcore.__all__) == len(EXPECTED)


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in neuralcore.__all__:
        value = getattr(neuralcore, name)
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_public_objects_show_their_public_path() -> None:
    for name in neuralcore.__all__:
        module = getattr(getattr(neuralcore, name), "__module__", "neuralcore")
        assert module.split(".")[0] == "neuralcore", (name, module)
        assert "._" not in module, (name, module)  # never a private module's path


def test_public_names_are_the_objects_themselves() -> None:
    import neuralcore.messaging
    import neuralcore.vectors

    assert neuralcore.cosine_similarity is neuralcore.vectors.cosine_similarity  # not bound
    assert neuralcore.cosine_similarity([3.0, 4.0], [3.0, 4.0]) == pytest.approx(1.0)
    assert neuralcore.MessageBus is neuralcore.messaging.MessageBus
    assert "MessageBus" in dir(neuralcore)


def test_package_doctest_collects_only_its_own_examples() -> None:
    """Loaded names must not make doctest re-run their examples with this module's globals."""
    for name in neuralcore.__all__:
        getattr(neuralcore, name)  # every public name loaded (cached where it is kept)
    found = {t.name for t in doctest.DocTestFinder().find(neuralcore) if t.examples}
    assert found == {"neuralcore"}
    assert neuralcore.cosine_similarity([1.0, 0.0], [0.0, 1.0]) == 0.0  # still the function


def test_errors_live_in_the_public_errors_module() -> None:
    assert set(neuralcore.errors.__all__) <= set(neuralcore.__all__)
    for name in neuralcore.errors.__all__:
        error = getattr(neuralcore.errors, name)
        assert error is getattr(neuralcore, name)
        assert issubclass(error, neuralcore.NeuralcoreError)
    with pytest.raises(neuralcore.ConfigError) as info:
        neuralcore.BusConfig(prefetch="x")  # type: ignore[arg-type]
    assert info.exconly().startswith("neuralcore.errors.ConfigError: config field 'prefetch'")


def _home(name: str, value: object) -> ModuleType:
    """The private module that defines a public object (``__module__`` gives the public one)."""
    pattern = re.compile(rf"^(class|def|async def) {name}\b", re.MULTILINE)
    for module in list(sys.modules.values()):
        if module is None or "._" not in module.__name__ or vars(module).get(name) is not value:
            continue
        path = getattr(module, "__file__", None)
        if path and pattern.search(Path(path).read_text(encoding="utf-8")):
            return module
    raise LookupError(name)


@pytest.mark.parametrize("name", [n for n in neuralcore.__all__ if n != "__version__"])
def test_examples_of_public_objects_run(name: str) -> None:
    """Doctest skips an object whose ``__module__`` is not the file it reads; run them here."""
    value = getattr(neuralcore, name)
    home = neuralcore.errors if value.__module__ == "neuralcore.errors" else _home(name, value)
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(value, name, module=False, globs=dict(vars(home))):
        runner.run(test)
    assert runner.failures == 0, name
    assert "neuralcore.core._errors" not in (value.__doc__ or "")


def test_import_is_cheap() -> None:
    code = (
        "import sys, json, neuralcore; "
        "print(json.dumps(sorted(m for m in ('numpy', 'onnxruntime', 'msgspec', 'redis', "
        "'confluent_kafka', 'torch', 'tokenizers', 'faiss', 'numkong', 'simsimd', 'sqlite3') "
        "if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        neuralcore.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018

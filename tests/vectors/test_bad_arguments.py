"""Arguments that once escaped as raw numpy/OS exceptions: each now names the bad value.

Found by tests/test_fuzz_api.py; kept here as explicit cases so a regression points at the
exact argument, on both backends where the argument reaches a kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from neuralcore.errors import ConfigError, IndexFileError, InputTypeError, InvalidInputError
from neuralcore.vectors import HNSWIndex, VectorOps


def _deep(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


def _index() -> HNSWIndex:
    index = HNSWIndex(2, backend="python")
    index.add([1, 2], np.eye(2, dtype=np.float32))
    return index


@pytest.mark.parametrize("flag", [np.array([1.0, 2.0]), "yes", 1, 0.0, [True]])
@pytest.mark.parametrize(
    "name", ["cosine_similarity", "cosine_distance", "dot", "euclidean_distance"]
)
def test_allow_nonfinite_must_be_a_bool(vector_ops: VectorOps, name: str, flag: Any) -> None:
    # lists take the general path on both backends, where the flag is read
    with pytest.raises(InputTypeError, match=r"allow_nonfinite must be True or False, got "):
        getattr(vector_ops, name)([1.0, 2.0], [[1.0, 2.0]], allow_nonfinite=flag)


def test_numpy_bools_are_accepted_as_flags(vector_ops: VectorOps) -> None:
    out = vector_ops.dot([1.0, float("nan")], [1.0, 1.0], allow_nonfinite=np.bool_(True))
    assert np.isnan(out)


@pytest.mark.parametrize("flag", [np.array([1.0, 2.0]), "no"])
def test_normalize_flags_must_be_bools(vector_ops: VectorOps, flag: Any) -> None:
    with pytest.raises(InputTypeError, match="inplace must be True or False"):
        vector_ops.normalize(np.ones(2), inplace=flag)
    with pytest.raises(InputTypeError, match="allow_nonfinite must be True or False"):
        vector_ops.normalize([1.0, 2.0], allow_nonfinite=flag)


def test_vector_ops_arguments_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"'backend' = array\(\['a', 'b'\]"):
        VectorOps(backend=np.array(["a", "b"]))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match=r"allow_nonfinite must be True or False, got array"):
        VectorOps(allow_nonfinite=np.array([1.0, 2.0]))  # type: ignore[arg-type]


def test_top_k_metric_must_be_a_known_name(vector_ops: VectorOps) -> None:
    with pytest.raises(InvalidInputError, match=r"got array\(\[1\., 2\.\]\)"):
        vector_ops.top_k([1.0, 0.0], [[1.0, 0.0]], 1, metric=np.array([1.0, 2.0]))  # type: ignore[arg-type]


def test_index_metric_and_dtype_must_be_names() -> None:
    with pytest.raises(ConfigError, match=r"'metric' = array"):
        HNSWIndex(2, metric=np.array([1.0, 2.0]))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'dtype' = \['f32'\]"):
        HNSWIndex(2, dtype=["f32"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "keys", [[[1.0, 2.0], [3.0]], ("", b"\x80"), [[1], [2, 3]]], ids=["ragged", "bytes", "ints"]
)
def test_ragged_or_undecodable_keys_name_the_keys(keys: Any) -> None:
    index = _index()
    with pytest.raises(InputTypeError, match=r"keys must be a 1-D list of integers, got "):
        index.add(keys, np.ones((2, 2), np.float32))
    with pytest.raises(InputTypeError, match=r"keys must be a 1-D list of integers, got "):
        index.remove(keys)
    assert len(index) == 2  # nothing changed


def test_deeply_nested_values_are_shown_shortened() -> None:
    index, deep = _index(), _deep(200)
    with pytest.raises(
        InvalidInputError, match=r"k must be an integer >= 1, got \[\[\[\[\.\.\.\]\]\]\]$"
    ):
        index.search([1.0, 0.0], k=deep)
    with pytest.raises(
        InputTypeError, match=r"key must be an integer, got \[\[\[\[\.\.\.\]\]\]\]$"
    ):
        index.get(deep)


BAD_PATHS = {
    "nul": ("a\x00b", r"'a\\x00b': not a valid file path: it contains a NUL byte"),
    "surrogate": ("\ud800x", r"'\\ud800x': not a valid file path: surrogates not allowed"),
}
OPENERS: dict[str, Callable[[str], object]] = {
    "load": HNSWIndex.load,
    "view": HNSWIndex.view,
    "save": lambda path: _index().save(path),
}


@pytest.mark.parametrize("opener", sorted(OPENERS))
@pytest.mark.parametrize("case", sorted(BAD_PATHS))
def test_unusable_paths_raise_index_file_errors_naming_the_path(
    opener: str, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path, message = BAD_PATHS[case]
    with pytest.raises(IndexFileError, match=message):
        OPENERS[opener](path)
    assert list(tmp_path.iterdir()) == []


def test_saving_under_a_name_too_long_names_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(IndexFileError, match=r"^'aaaa.*': cannot write index file: .*too long"):
        _index().save("a" * 300)
    with pytest.raises(IndexFileError, match=r"aaaa.*too long"):
        HNSWIndex.load("a" * 300)
    assert list(tmp_path.iterdir()) == []

"""Parse and validate a serialised FAISS HNSW index before FAISS reads a byte of it.

FAISS trusts its files: a link id past the end, a node whose upper-level links point at
nodes that do not exist on that level, or a wrong count makes the next search read out of
bounds. So the blob is walked here, field by field, in the exact layout FAISS 1.x writes
(``IHNf``: ``IndexHNSWFlat``; ``IHNs``: ``IndexHNSWSQ`` with fp16/bf16/8-bit codes), and every
structural field is checked against the metadata and against each other:

* header: dimension, row count, metric, ``is_trained``;
* level probabilities and per-level link counts (``2M`` on level 0, ``M`` above);
* levels (``1..len(probas)``), offsets (each node's link block, prefix sums that end at
  the link array's length), every link id in ``[-1, rows)`` and, on level ``l >= 1``,
  pointing only at nodes that reach level ``l``;
* entry point and top level consistent with the levels;
* storage: fourcc, header, quantiser type, code size, the trained ranges (8-bit: finite,
  one minimum and one positive width per dimension) and the code array's length;
* and nothing left over or missing: the walk must end exactly at the blob's end.

Only then is the blob handed to FAISS (copied for ``load``, zero-copy for ``view``).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from neuralcore.errors import IndexFileError

__all__ = ("GraphInfo", "validate_faiss_hnsw")

# ScalarQuantizer.QuantizerType values FAISS writes for the storage types used here
# quantiser type, bytes per component and trained floats per dimension, per storage:
# QT_fp16, QT_bf16 and QT_8bit (per-dimension min/width); a test pins the ids against faiss
_QT = {"f16": (4, 2, 0), "bf16": (7, 2, 0), "i8": (0, 1, 2)}
_METRIC = {"cosine": 0, "ip": 0, "l2": 1}  # METRIC_INNER_PRODUCT, METRIC_L2
_MAX_LEVELS = 64
_DUMMY = 1 << 20


class GraphInfo(NamedTuple):
    """Where fields sit inside a validated blob (codes: for decoding them in numpy)."""

    codes_offset: int
    code_size: int
    trained_offset: int  # the 8-bit ranges (vmin per dimension, then width); -1 without
    levels_offset: int
    links_offset: int
    entry_offset: int


class _Reader:
    """A bounds-checked cursor over the blob; every read names the field on failure."""

    def __init__(self, path: Path, blob: memoryview) -> None:
        self.path, self.blob, self.pos = path, blob, 0

    def fail(self, what: str) -> IndexFileError:
        return IndexFileError(f"{self.path}: FAISS section: {what} (offset {self.pos})")

    def take(self, size: int, field: str) -> int:
        start = self.pos
        if size < 0 or start + size > self.blob.nbytes:
            raise self.fail(f"{field} runs past the end of the section")
        self.pos = start + size
        return start

    def scalar(self, fmt: str, field: str) -> Any:
        spec = struct.Struct("<" + fmt)
        return spec.unpack_from(self.blob, self.take(spec.size, field))[0]

    def array(self, dtype: str, field: str, *, count: int | None = None) -> NDArray[Any]:
        size = self.scalar("Q", f"{field} length")
        if count is not None and size != count:
            raise self.fail(f"{field} has {size} entries, expected {count}")
        item = np.dtype(dtype)
        if size > self.blob.nbytes // max(1, item.itemsize):
            raise self.fail(f"{field} length {size} is impossible")
        start = self.take(size * item.itemsize, field)
        return np.frombuffer(self.blob, dtype=item, count=size, offset=start)


def _header(r: _Reader, *, dim: int, rows: int, metric: str) -> None:
    d, ntotal, dummy1, dummy2 = r.scalar("i", "d"), r.scalar("q", "ntotal"), 0, 0
    dummy1, dummy2 = r.scalar("q", "dummy"), r.scalar("q", "dummy")
    trained, kind = r.scalar("B", "is_trained"), r.scalar("i", "metric_type")
    if (d, ntotal) != (dim, rows):
        raise r.fail(f"header says dim {d} and {ntotal} rows, metadata {dim} and {rows}")
    if (dummy1, dummy2, trained) != (_DUMMY, _DUMMY, 1) or kind != _METRIC[metric]:
        raise r.fail(f"header fields {(dummy1, dummy2, trained, kind)} do not match")


def validate_faiss_hnsw(
    path: Path, blob: memoryview, *, dim: int, rows: int, metric: str, dtype: str, m: int
) -> GraphInfo:
    """Check every structural field of a FAISS HNSW blob; raise :class:`IndexFileError`.

    Examples
    --------
    >>> validate_faiss_hnsw(Path("x"), memoryview(b"IHNf"), dim=2, rows=0, metric="l2",
    ...                     dtype="f32", m=4)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    neuralcore.errors.IndexFileError: x: FAISS section: d runs past the end of the section
    """
    r = _Reader(path, blob.cast("B") if blob.format != "B" else blob)
    fourcc = bytes(r.blob[r.take(4, "fourcc") : r.pos])
    if fourcc != (b"IHNf" if dtype == "f32" else b"IHNs"):
        raise r.fail(f"index type {fourcc!r} does not match storage {dtype}")
    _header(r, dim=dim, rows=rows, metric=metric)
    where = _graph(r, rows=rows, m=m)
    codes = _storage(r, dim=dim, rows=rows, metric=metric, dtype=dtype)
    if r.pos != r.blob.nbytes:
        raise r.fail(f"{r.blob.nbytes - r.pos} unexpected bytes after the index")
    return GraphInfo(*codes, *where)


def _graph(r: _Reader, *, rows: int, m: int) -> tuple[int, int, int]:
    """Check the graph; return the offsets of the levels, the links and the entry point."""
    probas = r.array("<f8", "assign_probas")
    if not 1 <= len(probas) <= _MAX_LEVELS or not np.all((probas >= 0) & (probas <= 1)):
        raise r.fail("level probabilities are out of range")
    cum = r.array("<i4", "cum_nneighbor_per_level", count=len(probas) + 1).astype(np.int64)
    want = np.concatenate(([0, 2 * m], 2 * m + m * np.arange(1, len(probas))))
    if not np.array_equal(cum, want):
        raise r.fail(f"links per level {cum[:4].tolist()}... do not match M={m}")
    levels_at = r.pos + 8
    levels = r.array("<i4", "levels", count=rows).astype(np.int64)
    if rows and (levels.min() < 1 or levels.max() > len(probas)):
        raise r.fail("a node level is out of range")
    offsets = r.array("<u8", "offsets", count=rows + 1)
    links_at = r.pos + 8
    links = r.array("<i4", "neighbors")
    sizes = cum[levels] if rows else np.zeros(0, np.int64)
    if offsets[0] != 0 or not np.array_equal(np.diff(offsets.astype(np.int64)), sizes):
        raise r.fail("link offsets do not match the node levels")
    if int(offsets[-1]) != len(links):
        raise r.fail(f"{len(links)} links stored, offsets need {int(offsets[-1])}")
    _links(r, links, levels, cum)
    entry_at = r.pos
    entry, top = r.scalar("i", "entry_point"), r.scalar("i", "max_level")
    ef_c, ef_s, _ = r.scalar("i", "efConstruction"), r.scalar("i", "efSearch"), r.scalar("i", "-")
    if rows == 0:
        if (entry, top) != (-1, -1):
            raise r.fail(f"empty graph with entry point {entry}, level {top}")
    elif not 0 <= entry < rows or top != levels.max() - 1 or levels[entry] != top + 1:
        raise r.fail(f"entry point {entry} / top level {top} do not match the levels")
    if not (1 <= ef_c <= 1 << 20 and 1 <= ef_s <= 1 << 20):
        raise r.fail(f"efConstruction {ef_c} / efSearch {ef_s} out of range")
    return levels_at, links_at, entry_at


def _links(r: _Reader, links: NDArray[Any], levels: NDArray[np.int64], cum: NDArray[Any]) -> None:
    """Every link is -1 or a node id, and a level-``l`` link reaches a node on level ``l``."""
    rows = len(levels)
    if not len(links):
        return
    if links.min() < -1 or links.max() >= rows:
        raise r.fail(f"a link id is outside [-1, {rows})")
    upper = levels > 1
    if not upper.any():
        return
    # level of each slot: slot j of node i's block is on the level whose range holds j
    sizes = cum[levels]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    node_of = np.repeat(np.arange(rows), sizes)
    within = np.arange(len(links)) - starts[node_of]
    slot_level = np.searchsorted(cum, within, side="right") - 1
    high = slot_level >= 1
    target = links[high]
    used = target >= 0
    if np.any(levels[target[used]] <= slot_level[high][used]):
        raise r.fail("an upper-level link points at a node that is not on that level")


def _storage(r: _Reader, *, dim: int, rows: int, metric: str, dtype: str) -> tuple[int, int, int]:
    fourcc = bytes(r.blob[r.take(4, "storage fourcc") : r.pos])
    if dtype == "f32":
        if fourcc != (b"IxF2" if metric == "l2" else b"IxFI"):
            raise r.fail(f"storage type {fourcc!r} does not match")
        _header(r, dim=dim, rows=rows, metric=metric)
        size = r.scalar("Q", "codes length")  # counted in floats
        if size != rows * dim:
            raise r.fail(f"{size} stored floats, expected {rows * dim}")
        start = r.take(size * 4, "codes")
        return start, 4 * dim, -1
    if fourcc != b"IxSQ":
        raise r.fail(f"storage type {fourcc!r} does not match")
    _header(r, dim=dim, rows=rows, metric=metric)
    qtype, _, arg = r.scalar("i", "qtype"), r.scalar("i", "rangestat"), r.scalar("f", "arg")
    d, code_size = r.scalar("Q", "sq d"), r.scalar("Q", "code_size")
    trained_at = r.pos + 8
    trained = r.array("<f4", "trained")
    kind, width, ranges = _QT[dtype]
    if (qtype, d, code_size, len(trained)) != (kind, dim, width * dim, ranges * dim) or arg != arg:
        raise r.fail(f"quantiser {(qtype, d, code_size)} does not match {dtype} x {dim}")
    if ranges and not (np.isfinite(trained).all() and (trained[dim:] > 0).all()):
        raise r.fail("8-bit ranges are not finite with positive widths")
    codes = r.array("u1", "codes", count=rows * code_size)
    return r.pos - codes.nbytes, code_size, trained_at if ranges else -1

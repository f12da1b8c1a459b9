"""Embedding benchmark (sentence-transformers vs neuralcore fp32/int8); see neuralcore._bench."""

from neuralcore._bench.embedding import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmarks shipped with the package so ``neuralcore bench`` works from any install."""

"""``neuralcore demo``: the end-to-end job (chunk, embed, publish, index, query), timed.

``_corpus`` reads and chunks the stdlib's docstrings, ``_pipeline`` holds the stages and
the report, ``_remote`` runs the indexer in a second process over a Redis or Kafka bridge,
``_progress`` draws the progress bar, and ``_cli`` is the command.
"""

from neuralcore._demo._cli import main, register

__all__ = ("main", "register")

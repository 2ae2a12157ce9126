#!/usr/bin/env bash
# Checks helm/inland offline: helm lint, renderings with the chart's defaults and with
# helm/inland/ci/*.yaml (helm applies values.schema.json to each), every rendered manifest
# against the Kubernetes schemas (kubernetes-validate, strict) and the Prometheus Operator
# resources against pinned schemas (scripts/chart/validate.py), a values file that must be
# refused, and the chart's tests (helm/inland/tests, pytest).
#
# Installs what it needs once, into the cache (INLAND_CACHE, default ~/.cache/inland):
#   bin/helm-$HELM_VERSION   built from the Go module proxy (`go install`, a few minutes once)
#   chart-venv/              a Python venv with scripts/chart/requirements.txt
# A second run re-checks the versions only. HELM=/path/to/helm uses that binary instead.
#
#   scripts/chart-check.sh            # everything; exits non-zero on any failure
#   scripts/chart-check.sh --render   # prints the rendering with the chart's defaults
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.22.0
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS=(1.29.0 1.37.0)
RENDER_KUBE_VERSION=1.37.0
CHART=helm/inland
CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
BIN="$CACHE/bin"
VENV="$CACHE/chart-venv"
REQUIREMENTS=scripts/chart/requirements.txt
OUT="$CACHE/chart-render"

say() { echo "chart-check: $*" >&2; }
die() { say "$*"; exit 1; }

ensure_helm() {
    if [[ -n "${HELM:-}" ]]; then
        [[ -x "$HELM" ]] || die "HELM=$HELM is not an executable"
        return
    fi
    HELM="$BIN/helm-$HELM_VERSION"
    if [[ -x "$HELM" ]] && [[ "$("$HELM" version --template '{{.Version}}' 2>/dev/null)" == "$HELM_VERSION" ]]; then
        return
    fi
    command -v go >/dev/null || die "Go is needed once to build helm $HELM_VERSION (go install from the module proxy); or set HELM=/path/to/helm"
    say "building helm $HELM_VERSION with go install (once; a few minutes on 2 cores)"
    local tmp start
    tmp=$(mktemp -d)
    start=$(date +%s)
    # helm's own Makefile sets these with -ldflags; without them `helm version` is blank.
    GOFLAGS="${GOFLAGS:--p=2}" GOBIN="$tmp" nice -n 10 go install \
        -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
        "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
        || { rm -rf "$tmp"; die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"; }
    mkdir -p "$BIN"
    mv "$tmp/helm" "$HELM"
    rm -rf "$tmp"
    ln -sfn "helm-$HELM_VERSION" "$BIN/helm"
    say "helm $HELM_VERSION built in $(( $(date +%s) - start ))s: $HELM"
}

ensure_venv() {
    local stamp want
    stamp="$VENV/.inland-requirements"
    want="$(python3 --version 2>&1) $(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
    if [[ -x "$VENV/bin/python" ]] && [[ -f "$stamp" ]] && [[ "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    command -v python3 >/dev/null || die "python3 (3.11 or later, with venv) is needed"
    say "creating $VENV from $REQUIREMENTS (once)"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" \
        || die "pip install -r $REQUIREMENTS failed (is PyPI reachable?)"
    echo "$want" >"$stamp"
}

template() {
    "$HELM" template inland "$CHART" --namespace inland --kube-version "$RENDER_KUBE_VERSION" "$@"
}

ensure_helm
if [[ "${1:-}" == "--render" ]]; then
    template
    exit 0
fi
ensure_venv
say "helm $("$HELM" version --template '{{.Version}}') ($HELM), $("$VENV/bin/pip" show kubernetes-validate 2>/dev/null | sed -n 's/^Version: /kubernetes-validate /p')"

# Value sets: the chart's defaults, then every file in ci/.
names=(chart-defaults)
args=("")
for f in "$CHART"/ci/*.yaml; do
    names+=("$(basename "$f" .yaml)")
    args+=("--values $f")
done

say "[1/5] helm lint --strict"
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    "$HELM" lint --strict --quiet "$CHART" --namespace inland --kube-version "$RENDER_KUBE_VERSION" ${args[$i]} >/dev/null \
        || { "$HELM" lint --strict "$CHART" --kube-version "$RENDER_KUBE_VERSION" ${args[$i]}; die "lint failed: ${names[$i]}"; }
    say "      ${names[$i]}: ok"
done

say "[2/5] render and check values against values.schema.json (helm validates them on every render)"
rm -rf "$OUT"
mkdir -p "$OUT"
for i in "${!names[@]}"; do
    # shellcheck disable=SC2086
    template ${args[$i]} >"$OUT/${names[$i]}.yaml" || die "rendering failed: ${names[$i]}"
    say "      ${names[$i]}: $(grep -c '^kind:' "$OUT/${names[$i]}.yaml") manifests -> $OUT/${names[$i]}.yaml"
done

say "[3/5] validate every manifest: Kubernetes ${KUBE_VERSIONS[*]} (kubernetes-validate --strict), Prometheus Operator CRDs (pinned schemas)"
kube_args=()
for v in "${KUBE_VERSIONS[@]}"; do kube_args+=(--kube-version "$v"); done
"$VENV/bin/python" scripts/chart/validate.py "${kube_args[@]}" "$OUT"/*.yaml >&2 \
    || die "manifest validation failed"

say "[4/5] a store outside the country must be refused"
if err=$(template --values "$CHART/ci/production-values.yaml" \
        --values "$CHART/tests/values/non-in-country-region.yaml" 2>&1 >/dev/null); then
    die "production values with store.region=eu-central-1 were accepted"
fi
grep -q "/store/region" <<<"$err" || die "refused, but without naming store.region: $err"
while IFS= read -r line; do echo "      | $line" >&2; done <<<"$err"

say "[5/5] chart tests (pytest $CHART/tests)"
HELM="$HELM" KUBE_VERSION="$RENDER_KUBE_VERSION" "$VENV/bin/python" -m pytest -q -rs -p no:cacheprovider "$CHART/tests" >&2 \
    || die "chart tests failed"

say "pass"

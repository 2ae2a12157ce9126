#!/usr/bin/env bash
# The Python clients the query service is checked against, from PyPI into a venv in the
# cache (outside the repo): DuckDB (the oracle and the benchmark baseline), pyarrow and
# the ADBC Flight SQL driver (real Flight SQL clients), Polars (the README's example).
# Versions are pinned so a rerun only checks them. Prints the venv's python, so
#   PY=$(scripts/pyenv-query.sh)
# gives the interpreter tests and benches run (they read INLAND_QUERY_PYTHON).
set -euo pipefail

CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
VENV="$CACHE/query-venv"
REQS=(duckdb==1.5.6 pyarrow==26.0.1 adbc-driver-flightsql==1.13.0 adbc-driver-manager==1.13.0 polars==1.44.2)

die() { echo "pyenv-query.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null || die "python3 (3.9 or newer, with venv) is needed"
check() {
    "$VENV/bin/python" - "${REQS[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
for req in sys.argv[1:]:
    name, want = req.split("==")
    if version(name) != want:
        sys.exit(1)
PY
}
if ! check; then
    echo "pyenv-query.sh: installing ${REQS[*]} into $VENV" >&2
    python3 -m venv "$VENV" || die "cannot create $VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQS[@]}" \
        || die "pip install failed (is PyPI reachable?)"
    check || die "installed versions differ from the pinned ones"
fi
echo "$VENV/bin/python"

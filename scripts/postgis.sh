#!/usr/bin/env bash
# PostGIS for the geofence oracle test and benchmark: Debian's postgresql + postgis,
# one throwaway cluster under the cache dir, loopback only, trust auth.
#   scripts/postgis.sh install   apt-install the packages if missing
#   scripts/postgis.sh start     install, create the cluster if needed, start, print the URL
#   scripts/postgis.sh stop      stop the cluster (data stays for the next start)
set -euo pipefail

CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
RUN_DIR="$CACHE/postgis-run"
DATA="$RUN_DIR/data"
PORT="${POSTGIS_PORT:-5433}"
URL="postgres://postgres@127.0.0.1:$PORT/inland"

die() { echo "postgis.sh: $*" >&2; exit 1; }

# bin/ of the newest installed server (Debian layout /usr/lib/postgresql/NN/bin).
pg_bin() {
    local postgres
    postgres=$(printf '%s\n' /usr/lib/postgresql/*/bin/postgres | sort -V | tail -1)
    [ -x "$postgres" ] || return 1
    dirname "$postgres"
}

# True when the server and the postgis extension for that server are both present.
installed() {
    local bin v
    bin=$(pg_bin) || return 1
    v=$(basename "$(dirname "$bin")")
    [ -f "/usr/share/postgresql/$v/extension/postgis.control" ]
}

install() {
    if installed; then return 0; fi
    [ "$(id -u)" = 0 ] || die "installing needs root (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    # postgresql-postgis is Debian's metapackage for the postgis extension of the default
    # server version; try without refreshing the lists first, since that is slow.
    local pkgs=(postgresql postgis postgresql-postgis)
    if ! apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null
    fi
    installed || die "postgresql/postgis installed but the postgis extension was not found"
}

as_pg() { runuser -u postgres -- "$@"; }

psql_pg() { as_pg "$(pg_bin)/psql" -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

start() {
    install
    local bin
    bin=$(pg_bin)
    mkdir -p "$RUN_DIR"
    # The postgres user must reach the cluster even when the cache lives under /root.
    chown postgres:postgres "$RUN_DIR"
    local d="$RUN_DIR"
    while [ "$d" != / ]; do d=$(dirname "$d"); chmod o+x "$d" 2>/dev/null || true; done
    if [ ! -f "$DATA/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=reject \
            --encoding=UTF8 --locale=C >/dev/null
        # Trust on loopback only; everything else is rejected.
        cat >"$DATA/pg_hba.conf" <<HBA
local all all trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128 trust
HBA
        chown postgres:postgres "$DATA/pg_hba.conf"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$DATA" -l "$RUN_DIR/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $PORT -k $RUN_DIR" start >/dev/null \
            || { tail -20 "$RUN_DIR/server.log" >&2; die "server did not start (log above)"; }
    fi
    local i
    for i in $(seq 1 60); do
        "$bin/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
        [ "$i" = 60 ] && die "server not ready after 30 s (see $RUN_DIR/server.log)"
        sleep 0.5
    done
    if [ "$(psql_pg -d postgres -c "SELECT 1 FROM pg_database WHERE datname='inland'")" != 1 ]; then
        psql_pg -d postgres -c "CREATE DATABASE inland"
    fi
    psql_pg -d inland -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS postgis"
    echo "INLAND_POSTGIS_URL=$URL"
}

stop() {
    local bin
    bin=$(pg_bin) || return 0
    [ -f "$DATA/PG_VERSION" ] || return 0
    if as_pg "$bin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
        as_pg "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
    fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    *) die "usage: $0 install|start|stop" ;;
esac

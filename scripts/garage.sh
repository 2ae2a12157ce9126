#!/usr/bin/env bash
# Install and run a real single-node Garage S3 server for local development and CI: the
# archive's object store in tests. Garage comes from crates.io (cargo install, built from
# source: the only route we have, no binary downloads). Everything lives outside the repo.
#
#   scripts/garage.sh install          build Garage into the cache (idempotent, ~15 min once)
#   scripts/garage.sh start            install if needed, start, set up the dev key and the
#                                      bucket on first start, wait until it serves
#   scripts/garage.sh stop [--wipe]    stop it; --wipe also deletes its data
#   scripts/garage.sh status           "running ..." (exit 0) or "not running" (exit 3)
#   scripts/garage.sh env              the client settings, for: export $(scripts/garage.sh env)
#   scripts/garage.sh datadir          the directory holding all of Garage's stored state
#   scripts/garage.sh logs [-f]        tail of the server log
#   scripts/garage.sh cli ARGS         run the garage CLI against this server, e.g.
#       scripts/garage.sh cli bucket info inland
#
# The access key is a fixed dev key (printed by `env`): never use this server for real data.
#
# Environment (all optional):
#   INLAND_CACHE            cache root (default ~/.cache/inland)
#   GARAGE_RUN_DIR          config, data, pid and log (default $INLAND_CACHE/garage-run)
#   GARAGE_S3_PORT          S3 API port on 127.0.0.1 (default 3900)
#   GARAGE_RPC_PORT         cluster RPC port on 127.0.0.1 (default 3901)
#   GARAGE_ADMIN_PORT       admin API port on 127.0.0.1 (default 3903)
#   GARAGE_BUCKET           bucket created on first start (default inland)
#   GARAGE_START_TIMEOUT    seconds to wait for the server to serve (default 60)
#   GARAGE_STOP_TIMEOUT     seconds to wait after SIGTERM before SIGKILL (default 20)
#   GARAGE_WIPE=1           same as `stop --wipe`
set -euo pipefail

GARAGE_VERSION=2.5.0
# The region Garage claims; the store's region lock allows it (see inland-store config).
REGION=cn-north-1
# Fixed dev credentials so `env` can print them without asking the server. Key ids are
# GK + 24 hex digits in Garage; this one spells "inland-dev-k".
KEY_ID=GK696e6c616e642d6465762d6b
KEY_SECRET=b4a8ac5b1bd8aa19745059cb1a4fe070847547c76a902fe1d1b38e45be1c5386
KEY_NAME=inland-dev

S3_PORT="${GARAGE_S3_PORT:-3900}"
RPC_PORT="${GARAGE_RPC_PORT:-3901}"
ADMIN_PORT="${GARAGE_ADMIN_PORT:-3903}"
BUCKET="${GARAGE_BUCKET:-inland}"
START_TIMEOUT="${GARAGE_START_TIMEOUT:-60}"
STOP_TIMEOUT="${GARAGE_STOP_TIMEOUT:-20}"

CACHE="${INLAND_CACHE:-$HOME/.cache/inland}"
[[ "$CACHE" == /* ]] || CACHE="$PWD/$CACHE"  # absolute: paths end up in the config and pid checks
INSTALL_DIR="$CACHE/garage-$GARAGE_VERSION"
BIN="$INSTALL_DIR/bin/garage"
BUILD_DIR="$CACHE/garage-build"  # cargo's target dir for the build, kept for rebuilds
RUN_DIR="${GARAGE_RUN_DIR:-$CACHE/garage-run}"
[[ "$RUN_DIR" == /* ]] || RUN_DIR="$PWD/$RUN_DIR"
CONFIG="$RUN_DIR/garage.toml"
PID_FILE="$RUN_DIR/garage.pid"
LOG_FILE="$RUN_DIR/garage.log"
STORE_DIR="$RUN_DIR/store"       # meta/ (sqlite) and data/ (blocks)
RUN_MARK="$RUN_DIR/.inland-garage-run"  # proves the dir is ours before `--wipe` deletes it
SETUP_MARK="$RUN_DIR/.setup-done"       # layout, key and bucket exist

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_TEMPLATE="$SCRIPTS/garage/garage.toml"

SCRIPT=garage.sh SERVER=Garage SERVER_CMDLINE="-c $CONFIG server"
WIPE="${GARAGE_WIPE:-0}" LOG_LINES="${GARAGE_LOG_LINES:-100}"
# shellcheck source-path=SCRIPTDIR source=lib/server.sh
source "$SCRIPTS/lib/server.sh"

# `garage --version` prints e.g. "garage cargo:2.5.0 [features: ...]" (or v2.5.0 for release builds).
installed() {
  [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -Eq "[ :v]${GARAGE_VERSION//./\\.}( |$)"
}

# A `cargo install` of this version already running (started by hand or by another
# checkout): wait for it rather than build twice on a small machine.
wait_for_other_install() {
  local waited=0
  while pgrep -f "cargo install garage@$GARAGE_VERSION" >/dev/null 2>&1; do
    ((waited == 0)) && log "another 'cargo install garage@$GARAGE_VERSION' is running; waiting for it"
    sleep 5
    waited=1
  done
}

cmd_install() {
  installed && return 0
  wait_for_other_install
  installed && return 0
  command -v cargo >/dev/null || die "cargo not found on PATH (Garage is built from crates.io with cargo)"
  mkdir -p "$INSTALL_DIR"
  exec 9>"$INSTALL_DIR/.lock"
  take_lock 9 "$INSTALL_DIR/.lock" 1800
  if installed; then  # another run of this script finished it while we waited
    exec 9>&-
    return 0
  fi
  local build_log="$INSTALL_DIR/install.log" t0=$SECONDS
  log "building Garage $GARAGE_VERSION from crates.io into $INSTALL_DIR (log: $build_log)"
  # sqlite only (no lmdb/fjall) and bundled C libraries: nothing to apt-get. A test
  # server needs no peak speed: opt-level 1 without debug info builds in far less time on
  # CI's two cores.
  if ! CARGO_TARGET_DIR="$BUILD_DIR" CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
      CARGO_PROFILE_RELEASE_DEBUG=false cargo install "garage@$GARAGE_VERSION" --locked \
      --no-default-features --features bundled-libs,sqlite \
      --root "$INSTALL_DIR" >"$build_log" 2>&1 </dev/null 9>&-; then
    tail -n 30 "$build_log" >&2
    die "cargo install garage@$GARAGE_VERSION failed; full log: $build_log"
  fi
  installed || die "built, but '$BIN --version' does not report $GARAGE_VERSION"
  exec 9>&-
  log "installed Garage $GARAGE_VERSION in $((SECONDS - t0))s"
}

# The garage CLI talks to the running node over RPC, with the config's secret.
garage_cli() { "$BIN" -c "$CONFIG" "$@"; }

# HTTP status of GET http://127.0.0.1:PORT/PATH, without needing curl.
http_status() {
  local line
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
  IFS=' ' read -r -t 5 _ line _ <&3 || { exec 3>&-; return 1; }
  exec 3>&-
  echo "$line"
}

# Waits until CHECK (a command) succeeds while the server lives; fails after the timeout.
wait_for() {
  local pid="$1" what="$2" deadline=$((SECONDS + START_TIMEOUT))
  shift 2
  while ((SECONDS < deadline)); do
    alive "$pid" || fail_start "server (pid $pid) exited while waiting for $what"
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  fail_start "server (pid $pid) did not reach '$what' within ${START_TIMEOUT}s"
}

rpc_answers() { garage_cli status; }
# /health answers 200 once the layout is applied and the node can serve requests.
healthy() { [[ "$(http_status "$ADMIN_PORT" /health)" == 200 ]]; }
# Any S3 reply (403 for an anonymous request) means the S3 API listens.
s3_answers() { [[ -n "$(http_status "$S3_PORT" /)" ]]; }

new_secret() {  # 32 random bytes, hex, in a file only we can read (Garage checks)
  [[ -s "$1" ]] && return 0
  (umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$1")
}

render_config() {
  mkdir -p "$STORE_DIR/meta" "$STORE_DIR/data"
  new_secret "$RUN_DIR/rpc_secret"
  new_secret "$RUN_DIR/admin_token"
  sed -e "s|@META_DIR@|$STORE_DIR/meta|g" \
    -e "s|@DATA_DIR@|$STORE_DIR/data|g" \
    -e "s|@RUN_DIR@|$RUN_DIR|g" \
    -e "s|@RPC_PORT@|$RPC_PORT|g" \
    -e "s|@S3_PORT@|$S3_PORT|g" \
    -e "s|@ADMIN_PORT@|$ADMIN_PORT|g" \
    -e "s|@REGION@|$REGION|g" \
    "$CONF_TEMPLATE" >"$CONFIG"
}

# First start: give the node a role (one zone, one replica), import the dev key, create the
# bucket. Each step checks first, so a start interrupted halfway finishes the job next time.
setup_cluster() {
  local pid="$1"
  if garage_cli status 2>/dev/null | grep -q "NO ROLE ASSIGNED"; then
    local node
    node="$(garage_cli node id -q 2>/dev/null | cut -d@ -f1)"
    [[ -n "$node" ]] || fail_start "cannot read this node's id (garage node id)"
    log "assigning the single-node layout"
    garage_cli layout assign -z dc1 -c 1G "$node" >/dev/null
    garage_cli layout apply --version 1 >/dev/null
  fi
  wait_for "$pid" "a healthy cluster (GET /health on :$ADMIN_PORT)" healthy
  if ! garage_cli key info "$KEY_ID" >/dev/null 2>&1; then
    log "importing the dev access key $KEY_NAME"
    garage_cli key import --yes -n "$KEY_NAME" "$KEY_ID" "$KEY_SECRET" >/dev/null
  fi
  # Tests create their own buckets (and bootstrap creates a missing one).
  garage_cli key allow --create-bucket "$KEY_ID" >/dev/null
  if ! garage_cli bucket info "$BUCKET" >/dev/null 2>&1; then
    log "creating bucket $BUCKET"
    garage_cli bucket create "$BUCKET" >/dev/null
  fi
  garage_cli bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID" >/dev/null
  touch "$SETUP_MARK"
}

cmd_env() {
  echo "INLAND_S3_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "INLAND_S3_REGION=$REGION"
  echo "INLAND_S3_BUCKET=$BUCKET"
  echo "AWS_ACCESS_KEY_ID=$KEY_ID"
  echo "AWS_SECRET_ACCESS_KEY=$KEY_SECRET"
}

cmd_start() {
  cmd_install
  mkdir -p "$RUN_DIR"
  touch "$RUN_MARK"
  exec 8>"$RUN_DIR/.lock"
  take_lock 8 "$RUN_DIR/.lock" 600

  local pid
  if pid="$(running_pid)"; then
    # Ours already: a no-op, but make sure it serves (it may be mid-startup).
    [[ -f "$SETUP_MARK" ]] || setup_cluster "$pid"
    wait_for "$pid" "a healthy cluster" healthy
    log "already running (pid $pid)"
    return 0
  fi
  ports_free "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT"
  render_config

  local t0=$SECONDS
  RUST_LOG="${RUST_LOG:-garage=info,netapp=warn}" spawn "$BIN" -c "$CONFIG" server
  pid="$(cat "$PID_FILE")"
  log "started Garage pid $pid, waiting up to ${START_TIMEOUT}s per step"
  wait_for "$pid" "its RPC port :$RPC_PORT" rpc_answers
  setup_cluster "$pid"
  wait_for "$pid" "the S3 API on :$S3_PORT" s3_answers
  log "Garage $GARAGE_VERSION serving S3 on http://127.0.0.1:$S3_PORT, region $REGION, bucket $BUCKET after $((SECONDS - t0))s (log: $LOG_FILE)"
}

cmd_status() {
  local pid
  if pid="$(running_pid)"; then
    local health
    health="$(http_status "$ADMIN_PORT" /health || echo "no answer")"
    echo "running: Garage $GARAGE_VERSION pid $pid, S3 http://127.0.0.1:$S3_PORT (region $REGION, bucket $BUCKET), health $health, log $LOG_FILE"
    return 0
  fi
  not_running "$S3_PORT"
}

cmd_cli() {
  installed || die "Garage is not installed: scripts/garage.sh install"
  [[ -f "$CONFIG" ]] || die "no config at $CONFIG: scripts/garage.sh start"
  garage_cli "$@"
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    datadir) echo "$STORE_DIR" ;;
    logs) cmd_logs "$@" ;;
    cli) cmd_cli "$@" ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"

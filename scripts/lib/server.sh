# shellcheck shell=bash
# Sourced by kafka.sh and garage.sh: one local server process run from outside the repo,
# tracked by a pid file that the process writes itself.
#
# The sourcing script sets:
#   SCRIPT          its name, for log lines
#   SERVER          what log lines call the process ("broker", "Garage")
#   SERVER_CMDLINE  a fixed string its command line contains (guards against pid reuse)
#   RUN_DIR RUN_MARK PID_FILE LOG_FILE STOP_TIMEOUT LOG_LINES WIPE

log() { printf '%s: %s\n' "$SCRIPT" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Serialize concurrent runs (e.g. two checkouts) on an fd the caller opened on FILE; a
# no-op where flock is missing.
take_lock() {  # FD FILE SECONDS
  command -v flock >/dev/null || return 0
  flock -w "$3" "$1" || die "timed out waiting for lock $2"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Refuses to start beside a process this script did not start.
ports_free() {
  local port
  for port in "$@"; do
    port_open "$port" && die "127.0.0.1:$port is already in use by a process this script did not start"
  done
  return 0
}

alive() {
  kill -0 "$1" 2>/dev/null || return 1
  # kill -0 succeeds on zombies (a server that died while our shell is its parent).
  [[ ! -r "/proc/$1/stat" || "$(cut -d' ' -f3 "/proc/$1/stat")" != Z ]]
}

# Prints the server's pid if the pid file names a live server of this run dir.
running_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && alive "$pid" || return 1
  # Guard against pid reuse after a reboot or crash: it must be our server.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$SERVER_CMDLINE" || return 1
  fi
  echo "$pid"
}

fail_start() {
  log "error: $1"
  if [[ -f "$LOG_FILE" ]]; then
    log "last lines of $LOG_FILE:"
    tail -n 40 "$LOG_FILE" >&2
  fi
  exit 1
}

# Starts COMMAND... in its own session, so it outlives the shell or CI step that started
# it, appending to LOG_FILE (one previous run kept). Returns once it has written PID_FILE.
spawn() {
  rm -f "$PID_FILE"
  [[ -s "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  local detach=()
  command -v setsid >/dev/null && detach=(setsid)
  # The inner shell records its own pid, then becomes the server (exec keeps the pid);
  # the child writes it because setsid may fork, so $! can lie.
  # shellcheck disable=SC2016 # $$ is the inner shell's
  ${detach[@]+"${detach[@]}"} bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PID_FILE" "$@" \
    </dev/null >>"$LOG_FILE" 2>&1 8>&- 9>&- &
  local tries=50
  while [[ ! -s "$PID_FILE" ]] && ((tries-- > 0)); do sleep 0.1; done
  [[ -s "$PID_FILE" ]] || fail_start "$SERVER did not write $PID_FILE"
}

# stop [--wipe]: SIGTERM, then SIGKILL after STOP_TIMEOUT; --wipe (or WIPE=1) then deletes
# the run dir, only if this script made it, whatever the environment says it is.
cmd_stop() {
  local remove="$WIPE" pid
  [[ "${1:-}" == "--wipe" ]] && remove=1
  if pid="$(running_pid)"; then
    log "stopping $SERVER pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
      log "still alive after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while alive "$pid"; do sleep 0.2; done
    fi
    log "stopped"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
  if [[ "$remove" == 1 && -d "$RUN_DIR" ]]; then
    [[ -f "$RUN_MARK" ]] || die "refusing to wipe $RUN_DIR: not a $SCRIPT run dir (no $RUN_MARK)"
    rm -rf "$RUN_DIR"
    log "wiped $RUN_DIR"
  fi
}

# The status line when running_pid finds nothing; exit code 3, as `status` documents.
not_running() {  # PORT
  if port_open "$1"; then
    echo "not running (from this script); but 127.0.0.1:$1 is in use by another process"
  else
    echo "not running"
  fi
  return 3
}

cmd_logs() {
  [[ -f "$LOG_FILE" ]] || die "no log at $LOG_FILE (never started?)"
  if [[ "${1:-}" == "-f" ]]; then
    tail -n 100 -f "$LOG_FILE"
  else
    tail -n "$LOG_LINES" "$LOG_FILE"
  fi
}

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; }

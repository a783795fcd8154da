#!/usr/bin/env bash
# Start/stop a local moto server (SQS, DynamoDB, Step Functions with execution enabled).
# It runs through scripts/moto_server.py, which applies DynamoDB requests one at a
# time (moto's own server does not isolate concurrent transactions; DynamoDB does).
#   scripts/moto.sh start|stop|status      port: ${MOTO_PORT:-5123}
# moto's Step Functions engine calls SQS at localhost:$MOTO_PORT, so MOTO_PORT must equal the -p port.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-emul"
STATE="$ROOT/.myloware"
PIDFILE="$STATE/moto.pid"
LOG="$STATE/moto.log"
export MOTO_PORT="${MOTO_PORT:-5123}"
URL="http://127.0.0.1:$MOTO_PORT"

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }
ready() { curl -sf "$URL/moto-api/" >/dev/null 2>&1; }
enable_exec() {
  curl -sf -X POST -H 'Content-Type: application/json' \
    -d '{"stepfunctions":{"execute_state_machine":true}}' "$URL/moto-api/config" >/dev/null
}

start() {
  mkdir -p "$STATE"
  if running && ready; then
    enable_exec
    echo "moto: already running on $URL (pid $(cat "$PIDFILE")), execution enabled"
    return 0
  fi
  if ready; then
    echo "moto: port $MOTO_PORT is served by a process not started by this script; refusing" >&2
    exit 1
  fi
  local py="${PYTHON:-python3.11}"
  command -v "$py" >/dev/null 2>&1 || py=python3
  if [[ ! -x "$VENV/bin/python" ]]; then
    "$py" -m venv "$VENV"
  fi
  if [[ ! -x "$VENV/bin/moto_server" ]] || ! "$VENV/bin/python" -c 'import boto3, moto' 2>/dev/null; then
    "$VENV/bin/pip" install -q 'moto[server]>=5.2,<5.3'
  fi
  nohup "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 200); do
    ready && break
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || { echo "moto: exited during start-up, see $LOG" >&2; rm -f "$PIDFILE"; exit 1; }
    sleep 0.1
  done
  ready || { echo "moto: not ready after 20 s, see $LOG" >&2; exit 1; }
  enable_exec
  echo "moto: started on $URL (pid $(cat "$PIDFILE"), log $LOG), execution enabled"
}

stop() {
  if running; then
    local pid; pid="$(cat "$PIDFILE")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "moto: stopped (pid $pid)"
  else
    rm -f "$PIDFILE"
    echo "moto: not running"
  fi
}

status() {
  if running && ready; then echo "moto: running on $URL (pid $(cat "$PIDFILE"))"; else echo "moto: not running"; exit 1; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac

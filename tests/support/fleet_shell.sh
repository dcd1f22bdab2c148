# Sourced by the shell tests that run fleet-stage workers against a real stack
# (tests/fleet_cli/cli_test.sh, tests/ops/ops_cli_test.sh): one start-up and one cleanup.
#   fleet_shell_init NAME   SRC, BUILD, FLEET, STAGE, MODEL, WORK ($BUILD/tests/NAME/run.*: removed
#                           on success, kept with the workers' log tails on failure), the EXIT trap
#   stack_up                scripts/stack.sh up in $WORK/stack; exports its stack.env
#   config_copy PREFIX OUT  configs/stories260K-2stage.yaml with topic prefix PREFIX, absolute model paths
#   start_worker CFG K      fleet-stage --stage K in the background (log $WORK/stage-K.log, pid PIDS[K])
#   wait_ready K            until worker K logs "ready"; fails if it exits first or after WAIT_S
# Env: FLEET_BUILD_DIR (build tree), FLEET_SOURCE_ROOT (the repository).

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*" >&2; }

fleet_shell_init() {
  SRC=${FLEET_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
  BUILD=${FLEET_BUILD_DIR:-$SRC/build}
  case "$BUILD" in /*) ;; *) BUILD="$SRC/$BUILD" ;; esac
  export FLEET_BUILD_DIR="$BUILD"
  FLEET="$BUILD/services/fleet/fleet"
  STAGE="$BUILD/services/fleet-stage/fleet-stage"
  MODEL="$SRC/models/stories260K/stories260K.bin"
  WAIT_S=${WAIT_S:-120}  # bound of every polling loop
  local x
  for x in "$FLEET" "$STAGE"; do [ -x "$x" ] || fail "$x is not built"; done
  [ -f "$MODEL" ] || fail "$MODEL missing (scripts/fetch-models)"
  mkdir -p "$BUILD/tests/$1"
  WORK=$(mktemp -d "$BUILD/tests/$1/run.XXXXXX")
  STACK="$WORK/stack"
  PIDS=()
  trap fleet_shell_cleanup EXIT
}

fleet_shell_cleanup() {
  local rc=$? pid i f
  trap - EXIT
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ -d "$STACK" ] && { "$SRC/scripts/stack.sh" down "$STACK" >/dev/null 2>&1 || echo "warning: stack down failed in $STACK" >&2; }
  if [ "$rc" -eq 0 ]; then
    rm -rf "$WORK"
  else
    for f in "$WORK"/stage-*.log; do [ -f "$f" ] && { echo "=== tail $f" >&2; tail -n 15 "$f" >&2; }; done
    echo "logs kept in $WORK" >&2
  fi
  exit "$rc"
}

stack_up() {
  step "stack in $STACK"
  "$SRC/scripts/stack.sh" up "$STACK" >/dev/null
  set -a
  . "$STACK/stack.env"
  set +a
  [ -n "${FLEET_KAFKA_BROKERS:-}" ] || fail "no FLEET_KAFKA_BROKERS in $STACK/stack.env"
}

config_copy() {
  local prefix=$1 out=$2
  sed -e "s|^\(  topic_prefix:\) fleet\$|\1 $prefix|" -e "s|\.\./models/|$SRC/models/|g" \
    "$SRC/configs/stories260K-2stage.yaml" >"$out"
  grep -q "topic_prefix: $prefix\$" "$out" || fail "could not set topic_prefix in $out"
  grep -q "path: $SRC/models/stories260K/stories260K.bin" "$out" || fail "could not rewrite model.path in $out"
}

start_worker() {
  "$STAGE" --config "$1" --stage "$2" >"$WORK/stage-$2.log" 2>&1 &
  PIDS[$2]=$!
}

wait_ready() {  # bounded polling of a worker's log for its "[id] ready" line
  local k=$1 deadline=$((SECONDS + WAIT_S))
  until grep -qs '\] ready$' "$WORK/stage-$k.log"; do
    kill -0 "${PIDS[$k]}" 2>/dev/null || fail "stage $k worker exited before ready"
    [ "$SECONDS" -lt "$deadline" ] || fail "stage $k worker not ready after ${WAIT_S} s"
    sleep 0.1
  done
}

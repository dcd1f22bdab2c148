#!/usr/bin/env bash
# ctest stack_up_down: scripts/stack.sh brings up a real Kafka broker and redis-server,
# they carry a message / a key, `up` is idempotent, and `down` leaves nothing behind.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK="$ROOT/scripts/stack.sh"
DIR=$(mktemp -d "${TMPDIR:-/tmp}/fleet-stack-test.XXXXXX")

fail() { echo "FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    echo "--- stack_test failed (rc=$rc); logs from $DIR:" >&2
    for f in "$DIR/kafka/format.log" "$DIR/kafka/server.log" "$DIR/kafka/kafka.out" "$DIR/redis/redis.log"; do
      if [ -f "$f" ]; then echo "--- tail $f" >&2; tail -n 30 "$f" >&2; fi
    done
  fi
  "$STACK" down "$DIR" || echo "cleanup: down failed" >&2
  rm -rf "$DIR"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Normally already cached by scripts/setup; idempotent and fast when it is.
"$STACK" fetch

"$STACK" up "$DIR"

env_file="$DIR/stack.env"
[ -f "$env_file" ] || fail "no $env_file"
grep -Eq '^FLEET_KAFKA_BROKERS=127\.0\.0\.1:[0-9]+$' "$env_file" || fail "bad FLEET_KAFKA_BROKERS in $env_file"
grep -Eq '^FLEET_REDIS_URL=redis://127\.0\.0\.1:[0-9]+/0$' "$env_file" || fail "bad FLEET_REDIS_URL in $env_file"
BROKERS=$(sed -n 's/^FLEET_KAFKA_BROKERS=//p' "$env_file")
REDIS_URL=$(sed -n 's/^FLEET_REDIS_URL=//p' "$env_file")
KPORT=${BROKERS##*:}
RPORT=${REDIS_URL##*:}; RPORT=${RPORT%%/*}
KPID=$(cat "$DIR/kafka.pid")
RPID=$(cat "$DIR/redis.pid")
echo "stack: kafka $BROKERS (pid $KPID), redis $REDIS_URL (pid $RPID)"

# --- Kafka: explicit topic creation, then produce and consume back one message.
topic="stack-test-$$"
"$STACK" topics "$DIR" --create --topic "$topic" --partitions 3 --replication-factor 1
desc=$("$STACK" topics "$DIR" --describe --topic "$topic")
echo "$desc" | grep -q "PartitionCount: 3" || fail "topic $topic not created with 3 partitions: $desc"

payload="hello fleet $$ $(date +%s%N)"
printf '%s\n' "$payload" | kcat -P -b "$BROKERS" -t "$topic" -k key1 -X linger.ms=0
got=$(timeout 60 kcat -C -b "$BROKERS" -t "$topic" -o beginning -c 1 -e -q -f '%k=%s\n')
[ "$got" = "key1=$payload" ] || fail "consumed '$got', expected 'key1=$payload'"
echo "kafka: produced and consumed '$payload'"

# Auto-created topics get num.partitions (default 4).
printf 'x\n' | kcat -P -b "$BROKERS" -t "$topic-auto"
meta=$(kcat -L -b "$BROKERS" -t "$topic-auto")
echo "$meta" | grep -q "with ${FLEET_KAFKA_PARTITIONS:-4} partitions" || fail "auto-created topic: $meta"

# --- Redis: SET/GET.
[ "$(redis-cli -u "$REDIS_URL" SET fleet:stack-test "v$$")" = "OK" ] || fail "redis SET"
[ "$(redis-cli -u "$REDIS_URL" GET fleet:stack-test)" = "v$$" ] || fail "redis GET"
echo "redis: SET/GET ok"

# --- up again: reuses the running stack (same ports, same processes).
cp "$env_file" "$DIR/stack.env.first"
"$STACK" up "$DIR"
cmp -s "$env_file" "$DIR/stack.env.first" || fail "second up changed stack.env: $(cat "$env_file")"
[ "$(cat "$DIR/kafka.pid")" = "$KPID" ] || fail "second up restarted kafka"
[ "$(cat "$DIR/redis.pid")" = "$RPID" ] || fail "second up restarted redis"
"$STACK" status "$DIR" >/dev/null || fail "status says not up"

# --- down: both processes gone, both ports closed.
"$STACK" down "$DIR"
# Gone: no such process, or a zombie not yet reaped by its (container init) parent.
running() { local st; st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) && [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]; }
if running "$KPID"; then fail "kafka pid $KPID still running after down"; fi
if running "$RPID"; then fail "redis pid $RPID still running after down"; fi
for p in "$KPORT" "$RPORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then fail "port $p still open after down"; fi
done
if "$STACK" status "$DIR" 2>/dev/null; then fail "status says up after down"; fi
echo "stack_up_down: ok"

#!/usr/bin/env bash
# End to end through the public topics, against a real Kafka broker and 2 fleet-stage
# workers of stories260K (configs/stories260K-2stage.yaml with a unique topic prefix):
#   (a) a prompt produced with kcat as plain JSON gets its completion on the results
#       topic, read with kcat: the done text equals `fleet generate`, 40 token events;
#   (b) `fleet submit` prints the same text; its error path (prompt_too_long) exits 1
#       and its timeout (no workers on a prefix) exits 2;
#   (c) malformed records get error events (invalid_request / invalid_json) and
#       dead-letter records;
#   (d) `fleet tail` prints the events (from the beginning, and live by id).
# Env: FLEET_BUILD_DIR (build tree with fleet, fleet-stage and the Kafka cache),
#      FLEET_SOURCE_ROOT (the repository). Scratch + logs: $FLEET_BUILD_DIR/tests/fleet_cli/run.*
#      (removed on success, kept on failure).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../support/fleet_shell.sh"
fleet_shell_init fleet_cli
EVENTS="python3 $SRC/tests/fleet_cli/events.py"
PROMPT="Once upon a time"
N=40
command -v kcat >/dev/null || fail "kcat not found (scripts/setup installs it)"

stack_up
B=$FLEET_KAFKA_BROKERS

# A config copy with a unique topic prefix and absolute model paths.
PREFIX="clitest-$$-$RANDOM"
CFG="$WORK/deploy.yaml"
config_copy "$PREFIX" "$CFG"

step "2 workers, prefix $PREFIX"
for k in 0 1; do start_worker "$CFG" "$k"; done
wait_ready 0
wait_ready 1

# Reads a whole topic with kcat (-e: stop at its end) into FILE.
read_topic() { kcat -C -b "$B" -X isolation.level=read_uncommitted -t "$1" -o beginning -e -q -f '%s\n' >"$2" 2>"$2.err" || true; }
# Polls TOPIC into FILE until `events.py CHECK ARGS... FILE` succeeds.
poll_topic() {
  local topic=$1 file=$2 deadline=$((SECONDS + WAIT_S))
  shift 2
  until read_topic "$topic" "$file" && $EVENTS "$@" "$file"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "'$*' not satisfied on $topic after ${WAIT_S} s (last read: $file)"
    sleep 0.3
  done
}

step "reference: fleet generate"
"$FLEET" generate --model "$MODEL" --prompt "$PROMPT" --temperature 0 --max-tokens $N >"$WORK/ref.txt" 2>"$WORK/ref.err"
[ "$(wc -c <"$WORK/ref.txt")" -gt 1 ] || fail "fleet generate printed nothing"

step "(a) kcat produce -> kcat consume"
printf '%s\n' "{\"id\":\"kcat-1\",\"prompt\":\"$PROMPT\",\"max_tokens\":$N,\"temperature\":0}" |
  kcat -P -b "$B" -t "$PREFIX.prompts" -k kcat-1
poll_topic "$PREFIX.results" "$WORK/results.jsonl" has-final kcat-1
$EVENTS completion kcat-1 "$WORK/results.jsonl" "$WORK/ref.txt" $N

step "(b) fleet submit"
"$FLEET" submit --config "$CFG" --prompt "$PROMPT" --max-tokens $N --temperature 0 --id submit-1 --timeout-s $WAIT_S \
  >"$WORK/submit.out" 2>"$WORK/submit.err" || { rc=$?; cat "$WORK/submit.err" >&2; fail "fleet submit exited $rc"; }
cmp "$WORK/submit.out" "$WORK/ref.txt" ||
  fail "fleet submit printed $(od -c "$WORK/submit.out" | head -3), fleet generate $(od -c "$WORK/ref.txt" | head -3)"
grep -q "completion $N tokens" "$WORK/submit.err" || fail "no usage summary on stderr: $(cat "$WORK/submit.err")"
cat "$WORK/submit.err" >&2
# --json: the raw events of the request, one per line; the same completion.
"$FLEET" submit --config "$CFG" --prompt "$PROMPT" --max-tokens $N --temperature 0 --id submit-json --json \
  --timeout-s $WAIT_S >"$WORK/submit-json.jsonl" 2>"$WORK/submit-json.err" || fail "fleet submit --json failed"
$EVENTS completion submit-json "$WORK/submit-json.jsonl" "$WORK/ref.txt" $N
# An error event (the prompt is longer than stories260K's 512-token context): exit 1, code on stderr.
long=$(printf 'hello %.0s' $(seq 1 700))
rc=0
"$FLEET" submit --config "$CFG" --prompt "$long" --max-tokens 5 --temperature 0 --id too-long-1 --timeout-s $WAIT_S \
  >/dev/null 2>"$WORK/too-long.err" || rc=$?
[ "$rc" -eq 1 ] || fail "submit of a too-long prompt exited $rc, expected 1: $(cat "$WORK/too-long.err")"
grep -q "prompt_too_long" "$WORK/too-long.err" || fail "no prompt_too_long on stderr: $(cat "$WORK/too-long.err")"
# No workers on another prefix: a timeout, exit 2, with a clear message.
sed "s|topic_prefix: $PREFIX\$|topic_prefix: $PREFIX-idle|" "$CFG" >"$WORK/idle.yaml"
rc=0
"$FLEET" submit --config "$WORK/idle.yaml" --prompt "$PROMPT" --timeout-s 2 >/dev/null 2>"$WORK/idle.err" || rc=$?
[ "$rc" -eq 2 ] || fail "submit without workers exited $rc, expected 2: $(cat "$WORK/idle.err")"
grep -q "timed out after 2 s" "$WORK/idle.err" || fail "unclear timeout message: $(cat "$WORK/idle.err")"

step "(c) malformed records"
printf '%s\n' '{"prompt": 5}' | kcat -P -b "$B" -t "$PREFIX.prompts" -k bad-1
printf '%s\n' 'this is not JSON {' | kcat -P -b "$B" -t "$PREFIX.prompts" -k bad-2
poll_topic "$PREFIX.results" "$WORK/results.jsonl" has-final bad-2
poll_topic "$PREFIX.results" "$WORK/results.jsonl" has-final bad-1
$EVENTS error bad-1 invalid_request "$WORK/results.jsonl"
$EVENTS error bad-2 invalid_json "$WORK/results.jsonl"
poll_topic "$PREFIX.dead-letter" "$WORK/dead.jsonl" has-dead-letter bad-2
poll_topic "$PREFIX.dead-letter" "$WORK/dead.jsonl" has-dead-letter bad-1
$EVENTS dead-letter bad-1 invalid_request "$WORK/dead.jsonl"
$EVENTS dead-letter bad-2 invalid_json "$WORK/dead.jsonl"

step "(d) fleet tail"
# Everything is final by now: the results topic holds exactly what kcat reads.
read_topic "$PREFIX.results" "$WORK/results.jsonl"
total=$($EVENTS count '*' "$WORK/results.jsonl")
[ "$total" -ge $((3 * (N + 1) + 3)) ] || fail "only $total events on $PREFIX.results"
"$FLEET" tail --config "$CFG" --from-beginning --max-events "$total" --timeout-s $WAIT_S \
  >"$WORK/tail.jsonl" 2>"$WORK/tail.err" || fail "fleet tail exited $?: $(cat "$WORK/tail.err")"
$EVENTS same-events "$WORK/tail.jsonl" "$WORK/results.jsonl"
"$FLEET" tail --config "$CFG" --from-beginning --id kcat-1 --max-events $((N + 1)) --timeout-s $WAIT_S \
  >"$WORK/tail-kcat.jsonl" 2>"$WORK/tail-kcat.err" || fail "fleet tail --id exited $?: $(cat "$WORK/tail-kcat.err")"
[ "$($EVENTS count '*' "$WORK/tail-kcat.jsonl")" -eq $((N + 1)) ] || fail "tail --id printed other events"
$EVENTS completion kcat-1 "$WORK/tail-kcat.jsonl" "$WORK/ref.txt" $N
# Live: a tail from the end sees a request submitted after it started following.
"$FLEET" tail --config "$CFG" --id live-1 --max-events $((N + 1)) --timeout-s $WAIT_S \
  >"$WORK/tail-live.jsonl" 2>"$WORK/tail-live.err" &
TAIL_PID=$!
PIDS+=("$TAIL_PID")
deadline=$((SECONDS + WAIT_S))
until grep -qs "following $PREFIX.results from the end" "$WORK/tail-live.err"; do
  kill -0 "$TAIL_PID" 2>/dev/null || fail "fleet tail exited early: $(cat "$WORK/tail-live.err")"
  [ "$SECONDS" -lt "$deadline" ] || fail "fleet tail did not start following"
  sleep 0.1
done
"$FLEET" submit --config "$CFG" --prompt "$PROMPT" --max-tokens $N --temperature 0 --id live-1 --timeout-s $WAIT_S \
  >/dev/null 2>&1 || fail "fleet submit live-1 failed"
rc=0
wait "$TAIL_PID" || rc=$?
[ "$rc" -eq 0 ] || fail "live fleet tail exited $rc: $(cat "$WORK/tail-live.err")"
$EVENTS completion live-1 "$WORK/tail-live.jsonl" "$WORK/ref.txt" $N

echo "PASS: fleet_cli_kcat_submit" >&2

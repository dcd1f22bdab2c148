#!/usr/bin/env bash
# fleet plan / fleet-stage --check / fleet status / fleet manifest against a real stack:
#   (a) `fleet plan` splits stories260K over two workers of unequal memory (unequal shares),
#       writes a config that `fleet-stage --check` accepts (and a broken copy it refuses);
#   (b) two fleet-stage workers started from the planned config generate exactly the text of
#       `fleet generate` (through `fleet submit`);
#   (c) `fleet status` lists both workers with their planned layers, host and hardware (table
#       and --json), and a request in flight;
#   (d) `fleet manifest show` lists the hashes (5 layers, embedding, head), `clear` removes them;
#   (e) `fleet plan --from-fleet` plans over the live workers' host and registered memory;
#   (f) `fleet detect` names the kernel variant; an unknown FLEET_KERNELS is a clear error.
# Env: FLEET_BUILD_DIR, FLEET_SOURCE_ROOT. Scratch: $FLEET_BUILD_DIR/tests/ops/run.* (kept on failure).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/../support/fleet_shell.sh"
fleet_shell_init ops
PROMPT="Once upon a time"
N=40

step "(f) fleet detect names the kernel variant"
"$FLEET" detect | grep -Eq '^kernels +(avx512|avx2|scalar) \(this CPU runs: scalar' || fail "fleet detect names no kernel variant"
if out=$(FLEET_KERNELS=amx "$FLEET" detect 2>&1); then fail "FLEET_KERNELS=amx accepted"; fi
grep -q "FLEET_KERNELS=amx: no such kernel variant" <<<"$out" || fail "unclear error for FLEET_KERNELS=amx: $out"

stack_up
RPORT=${FLEET_REDIS_URL##*:}; RPORT=${RPORT%%/*}

PREFIX="opstest-$$-$RANDOM"
BASE="$WORK/base.yaml"
config_copy "$PREFIX" "$BASE"

step "(a) fleet plan over two unequal workers"
# stories260K holds ~1.2 MB of f32 weights; with a stated 3 MiB overhead and a 4 MiB KV budget,
# 'small' has 0.5 MiB usable and 'large' 1.5 MiB: shares of about 25% and 75%.
cat >"$WORK/workers.yaml" <<'YAML'
- {name: small, memory: 7.5MiB}
- {name: large, memory: 8.5MiB}
YAML
PLANNED="$WORK/planned.yaml"
"$FLEET" plan --model "$MODEL" --workers "$WORK/workers.yaml" --base "$BASE" --overhead 3MiB --kv-budget 4MiB \
  --out "$PLANNED" >"$WORK/plan.txt" 2>"$WORK/plan.err" || fail "fleet plan failed: $(cat "$WORK/plan.err")"
cat "$WORK/plan.txt" >&2
"$FLEET" plan --model "$MODEL" --workers "$WORK/workers.yaml" --base "$BASE" --overhead 3MiB --kv-budget 4MiB --json \
  >"$WORK/plan.json" || fail "fleet plan --json failed"
read -r L0 L1 < <(/usr/bin/python3 - "$WORK/plan.json" "$PLANNED" <<'PY'
import json, sys, yaml
plan = json.load(open(sys.argv[1]))
cfg = yaml.safe_load(open(sys.argv[2]))
st = plan["stages"]
assert plan["overhead_bytes"] == 3 << 20 and plan["kv_budget_bytes"] == 4 << 20, plan
assert [s["worker"] for s in st] == ["small", "large"], st
assert st[0]["layers"][0] == 0 and st[0]["layers"][1] == st[1]["layers"][0] and st[1]["layers"][1] == 5, st
n0 = st[0]["layers"][1] - st[0]["layers"][0]; n1 = st[1]["layers"][1] - st[1]["layers"][0]
assert n1 > n0, f"the larger worker got {n1} layers, the smaller {n0}"
for s in st:
    assert s["weight_bytes"] <= s["usable_bytes"], s
assert [s["layers"] for s in cfg["stages"]] == [s["layers"] for s in st], (cfg["stages"], st)
assert cfg["kv"]["budget_bytes"] == 4 << 20, cfg["kv"]
assert cfg["kafka"]["topic_prefix"].startswith("opstest-"), cfg["kafka"]
print(st[0]["layers"][1] - 1, st[1]["layers"][0])
PY
) || fail "plan JSON / planned config do not agree (see above)"
"$STAGE" --check --config "$PLANNED" >"$WORK/check.out" 2>&1 || fail "fleet-stage --check refused the plan: $(cat "$WORK/check.out")"
grep -q "^OK" "$WORK/check.out" || fail "no OK line from --check: $(cat "$WORK/check.out")"
sed "s|layers: \[0, |layers: [1, |" "$PLANNED" >"$WORK/gap.yaml"
rc=0; "$STAGE" --check --config "$WORK/gap.yaml" >"$WORK/gap.out" 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "--check of a config with a gap exited $rc: $(cat "$WORK/gap.out")"
# Too small for the model: the shortfall is named.
printf -- '- {name: a, memory: 3.5MiB}\n- {name: b, memory: 3.5MiB}\n' >"$WORK/tiny.yaml"
rc=0; "$FLEET" plan --model "$MODEL" --workers "$WORK/tiny.yaml" --overhead 3MiB --kv-budget 0 >/dev/null 2>"$WORK/tiny.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "short by" "$WORK/tiny.err" || fail "plan over too little memory: rc $rc, $(cat "$WORK/tiny.err")"

step "(b) workers from the planned config (layers [0, $((L0 + 1))) and [$L1, 5))"
for k in 0 1; do start_worker "$PLANNED" "$k"; done
wait_ready 0
wait_ready 1
"$FLEET" generate --model "$MODEL" --prompt "$PROMPT" --temperature 0 --max-tokens $N >"$WORK/ref.txt" 2>/dev/null
[ "$(wc -c <"$WORK/ref.txt")" -gt 1 ] || fail "fleet generate printed nothing"
"$FLEET" submit --config "$PLANNED" --prompt "$PROMPT" --max-tokens $N --temperature 0 --id plan-1 --timeout-s $WAIT_S \
  >"$WORK/submit.out" 2>"$WORK/submit.err" || fail "fleet submit failed: $(cat "$WORK/submit.err")"
cmp "$WORK/submit.out" "$WORK/ref.txt" || fail "planned pipeline: '$(cat "$WORK/submit.out")' vs generate '$(cat "$WORK/ref.txt")'"

step "(c) fleet status"
# A request in flight, as stage 0 records one (status running, 3 prompt tokens, 2 generated).
redis-cli -p "$RPORT" HSET fleet:req:status-probe status running model stories260K prompt_token_count 3 \
  created_ms "$(($(date +%s) * 1000))" >/dev/null
redis-cli -p "$RPORT" RPUSH fleet:req:status-probe:tokens 5 6 >/dev/null
redis-cli -p "$RPORT" ZADD fleet:progress "$(($(date +%s) * 1000))" status-probe >/dev/null
"$FLEET" status --config "$PLANNED" >"$WORK/status.txt" || fail "fleet status failed"
cat "$WORK/status.txt" >&2
grep -q "^2 live worker(s)" "$WORK/status.txt" || fail "status does not count 2 workers"
grep -Eq "^0 +0-$L0 +stories260K +$(hostname)" "$WORK/status.txt" || fail "no stage 0 row with layers 0-$L0"
grep -Eq "^1 +$L1-4 +stories260K +$(hostname)" "$WORK/status.txt" || fail "no stage 1 row with layers $L1-4"
grep -Eq "^status-probe +running +stories260K +3 +2 " "$WORK/status.txt" || fail "the request in flight is not listed"
"$FLEET" status --config "$PLANNED" --json >"$WORK/status.json" || fail "fleet status --json failed"
/usr/bin/python3 - "$WORK/status.json" "$L0" "$L1" <<'PY' || fail "status --json (above)"
import json, sys
v = json.load(open(sys.argv[1])); l0, l1 = int(sys.argv[2]), int(sys.argv[3])
w = v["workers"]
assert [(x["stage"], x["layers"]) for x in w] == [(0, [0, l0 + 1]), (1, [l1, 5])], w
mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal:")).split()[1]) * 1024
for x in w:
    assert x["hardware"]["mem_total_bytes"] == mem, x["hardware"]
    assert x["hardware"]["logical_cores"] >= 1 and x["rss_bytes"] > 0 and x["heartbeat_age_ms"] >= 0, x
assert [r["id"] for r in v["requests"]] == ["status-probe"], v["requests"]
PY
redis-cli -p "$RPORT" DEL fleet:req:status-probe fleet:req:status-probe:tokens >/dev/null
redis-cli -p "$RPORT" ZREM fleet:progress status-probe >/dev/null

step "(d) fleet manifest"
"$FLEET" manifest show stories260K --config "$PLANNED" >"$WORK/manifest.txt" || fail "manifest show failed"
# 5 layers, the embedding (-1) and the head (5).
grep -q "7 hash(es)" "$WORK/manifest.txt" && grep -q "embedding" "$WORK/manifest.txt" &&
  grep -q "head (5)" "$WORK/manifest.txt" || fail "manifest show: $(cat "$WORK/manifest.txt")"
[ "$(redis-cli -p "$RPORT" HLEN fleet:manifest:stories260K)" = 7 ] || fail "Redis holds no 7-entry manifest"
"$FLEET" manifest clear stories260K --config "$PLANNED" >"$WORK/clear.txt" 2>&1 || fail "manifest clear failed"
grep -q "live worker" "$WORK/clear.txt" || fail "clear does not warn about the live workers: $(cat "$WORK/clear.txt")"
[ "$(redis-cli -p "$RPORT" EXISTS fleet:manifest:stories260K)" = 0 ] || fail "the manifest is still there"
"$FLEET" manifest show stories260K --config "$PLANNED" | grep -q "no manifest" || fail "show after clear"

step "(e) fleet plan --from-fleet"
"$FLEET" plan --from-fleet --config "$PLANNED" --overhead 3MiB --kv-budget 4MiB --json >"$WORK/from-fleet.json" \
  2>"$WORK/from-fleet.err" || fail "plan --from-fleet failed: $(cat "$WORK/from-fleet.err")"
/usr/bin/python3 - "$WORK/from-fleet.json" "$(hostname)" <<'PY' || fail "plan --from-fleet (above)"
import json, sys
p = json.load(open(sys.argv[1]))
mem = int(next(l for l in open("/proc/meminfo") if l.startswith("MemTotal:")).split()[1]) * 1024
assert [(s["worker"], s["memory_bytes"], s["layers"]) for s in p["stages"]] == [(sys.argv[2], mem, [0, 5])], p
PY
echo "ops_cli_test: OK" >&2

#!/usr/bin/env bash
# Progress bars of the fleet CLI on stderr: `fleet synth` (GGUF and safetensors), `fleet convert`
# (both directions) and the load in `fleet generate` draw 0% .. 100% frames with the job's
# byte total when forced (FLEET_PROGRESS=1) or on a terminal (util-linux `script`), and write
# nothing of the kind when stderr is a file or FLEET_PROGRESS=0.
# Env: FLEET_BUILD_DIR (build tree with services/fleet/fleet).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${FLEET_BUILD_DIR:-$SRC/build}
FLEET="$BUILD/services/fleet/fleet"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$FLEET" ] || fail "$FLEET is not built"
WORK=$(mktemp -d /tmp/fleet-progress.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# check ERRFILE VERB NAME [SIZE_FILE]: frames of "VERB ...NAME..." from 0% to 100% on one line,
# current == total at the end, and the total (MiB) within 0.2 MiB of SIZE_FILE's size.
check() {
  python3 - "$@" <<'EOF'
import os, re, sys
err, verb, name = open(sys.argv[1], encoding="utf-8", newline="").read(), sys.argv[2], sys.argv[3]
frames = [f for f in err.split("\r")[1:] if f.startswith(verb + " ")]
assert frames, f"no '{verb}' frames in {err!r}"
assert all(name in f for f in frames), frames
pcts = [int(re.search(r"(\d+)%", f).group(1)) for f in frames]
assert pcts[0] == 0 and pcts[-1] == 100 and pcts == sorted(pcts), pcts
assert all("\n" not in f for f in frames[:-1]) and "\n" in frames[-1], frames  # one line, ended
last = frames[-1].split("\n")[0].rstrip()
m = re.search(r"100%  ([\d.]+)/([\d.]+) (MiB|GiB)", last)
assert m and m.group(1) == m.group(2), last
if len(sys.argv) > 4:
    size = os.path.getsize(sys.argv[4]) / 2**20
    assert abs(float(m.group(2)) - size) < 0.2, (m.group(2), size)
print(f"ok: {last}")
EOF
}
# quiet ERRFILE: no progress frame at all.
quiet() { if grep -q $'\r' "$1" || grep -q '%' "$1"; then fail "progress written to $1: $(cat -A "$1")"; fi; }

echo "--- synth gguf, forced" >&2
FLEET_PROGRESS=1 "$FLEET" synth --shape tiny-k256 --type q8_0 --out "$WORK/k.gguf" 2>"$WORK/e1"
check "$WORK/e1" synth k.gguf "$WORK/k.gguf"

echo "--- synth gguf, stderr a file / FLEET_PROGRESS=0: quiet" >&2
env -u FLEET_PROGRESS "$FLEET" synth --shape tiny-k256 --type q8_0 --out "$WORK/q.gguf" 2>"$WORK/e2"
quiet "$WORK/e2"
grep -q "wrote" "$WORK/e2" || fail "no 'wrote' line: $(cat "$WORK/e2")"
cmp "$WORK/k.gguf" "$WORK/q.gguf" || fail "progress changed the file"
FLEET_PROGRESS=0 "$FLEET" synth --shape tiny-k256 --type q8_0 --out "$WORK/q.gguf" 2>"$WORK/e3"
quiet "$WORK/e3"

if command -v script >/dev/null; then
  echo "--- synth gguf on a terminal (script): drawn unless FLEET_PROGRESS=0" >&2
  env -u FLEET_PROGRESS script -qec "'$FLEET' synth --shape tiny-k256 --type q8_0 --out '$WORK/t.gguf'" /dev/null \
    >"$WORK/e4" </dev/null
  grep -q "t.gguf  100%" "$WORK/e4" || fail "no progress on a terminal: $(cat -A "$WORK/e4")"
  FLEET_PROGRESS=0 script -qec "'$FLEET' synth --shape tiny-k256 --type q8_0 --out '$WORK/t.gguf'" /dev/null \
    >"$WORK/e5" </dev/null
  if grep -q '%' "$WORK/e5"; then fail "FLEET_PROGRESS=0 drew on a terminal: $(cat -A "$WORK/e5")"; fi
fi

echo "--- synth hf, convert gguf -> hf -> gguf, forced" >&2
FLEET_PROGRESS=1 "$FLEET" synth --shape tiny-k256 --dtype f32 --out "$WORK/hf" 2>"$WORK/e6"
check "$WORK/e6" synth /hf "$WORK/hf/model.safetensors"
FLEET_PROGRESS=1 "$FLEET" convert --model "$WORK/k.gguf" --out "$WORK/conv" 2>"$WORK/e7"
check "$WORK/e7" convert /conv "$WORK/conv/model.safetensors"
FLEET_PROGRESS=1 "$FLEET" convert --model "$WORK/hf" --out "$WORK/back.gguf" --type f16 2>"$WORK/e8"
check "$WORK/e8" convert back.gguf "$WORK/back.gguf"

echo "--- load in fleet generate (q8_0 GGUF converted to f32 at load), forced and quiet" >&2
FLEET_PROGRESS=1 "$FLEET" generate --model "$WORK/k.gguf" --weights f32 --prompt hi --max-tokens 2 \
  >/dev/null 2>"$WORK/e9"
check "$WORK/e9" load "k.gguf layers 0-1"
env -u FLEET_PROGRESS "$FLEET" generate --model "$WORK/k.gguf" --weights f32 --prompt hi --max-tokens 2 \
  >/dev/null 2>"$WORK/e10"
quiet "$WORK/e10"
echo "progress CLI: all checks passed" >&2

#!/usr/bin/env bash
# compose/docker-compose.yml validates with Debian's docker-compose (`config` parses, merges the
# anchors and checks the schema; no engine is needed). Fails without docker-compose.
set -euo pipefail
SRC=${FLEET_SOURCE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if ! command -v docker-compose >/dev/null; then
  echo "FAIL: docker-compose not installed (scripts/setup installs Debian's package)" >&2
  exit 1
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
docker-compose -f "$SRC/compose/docker-compose.yml" config >"$out" || { echo "FAIL: docker-compose config" >&2; exit 1; }
# The resolved file still has what the topology needs (anchors merged into every service).
for s in kafka redis ingress stage0 stage1 prometheus; do
  grep -q "^  $s:" "$out" || { echo "FAIL: service $s missing from the resolved config" >&2; cat "$out" >&2; exit 1; }
done
grep -q "FLEET_KAFKA_BROKERS: kafka:9092" "$out" || { echo "FAIL: stage environment not merged" >&2; exit 1; }
docker-compose -f "$SRC/compose/docker-compose.yml" config --services | sort | tr '\n' ' ' >&2
echo "compose config: OK" >&2

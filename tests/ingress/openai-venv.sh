#!/usr/bin/env bash
# Makes (idempotently) a Python venv with the official openai client for tests/ingress:
#   tests/ingress/openai-venv.sh VENV_DIR
# Versions: tests/ingress/requirements.txt. Needs python3-venv (scripts/setup) and PyPI.
# Prints the venv's python on success.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV=${1:?usage: openai-venv.sh VENV_DIR}
REQ="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] &&
   "$VENV/bin/python" -c "import openai" 2>/dev/null; then
  echo "$VENV/bin/python"
  exit 0
fi
rm -rf "$VENV"
/usr/bin/python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQ" >&2
echo "$want" >"$STAMP"
echo "$VENV/bin/python"

#!/usr/bin/env python3
"""Checks on results / dead-letter records (one JSON object per line) for cli_test.sh.

  events.py has-final ID FILE               exit 0 iff FILE holds a done or error event for ID
  events.py completion ID FILE REF N        the done event's text == REF's text (one trailing
                                            newline stripped), N token events indexed 0..N-1
                                            whose texts concatenate to it
  events.py error ID CODE FILE              FILE holds an error event for ID with that code
  events.py has-dead-letter KEY FILE        exit 0 iff FILE holds a dead-letter record keyed KEY
  events.py dead-letter KEY CODE FILE       ... and its error code is CODE
  events.py same-events A B                 A and B hold the same events (as multisets)
  events.py count ID FILE                   prints the number of events for ID ('*': all)
Every failed check prints what it expected and what it found, and exits 1.
"""
import collections
import json
import sys


def load(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                sys.exit(f"{path}:{n}: not JSON ({e}): {line[:200]!r}")
    return out


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def of_id(events, rid):
    return [e for e in events if isinstance(e, dict) and e.get("id") == rid]


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "has-final":
        rid, path = argv[2:4]
        return 0 if any(e.get("type") in ("done", "error") for e in of_id(load(path), rid)) else 1
    if cmd == "completion":
        rid, path, ref_path, n = argv[2], argv[3], argv[4], int(argv[5])
        with open(ref_path, encoding="utf-8") as f:
            ref = f.read()
        if not ref.endswith("\n"):
            fail(f"{ref_path} does not end with a newline: {ref!r}")
        ref = ref[:-1]
        evs = of_id(load(path), rid)
        errors = [e for e in evs if e.get("type") == "error"]
        if errors:
            fail(f"error event for {rid}: {errors[0]}")
        done = [e for e in evs if e.get("type") == "done"]
        if len(done) != 1:
            fail(f"expected 1 done event for {rid}, found {len(done)}")
        done = done[0]
        if done.get("text") != ref:
            fail(f"done text for {rid} differs from fleet generate:\n  done:     {done.get('text')!r}\n"
                 f"  generate: {ref!r}")
        tokens = [e for e in evs if e.get("type") == "token"]
        if len(tokens) != n:
            fail(f"expected {n} token events for {rid}, found {len(tokens)}")
        idx = sorted(e["index"] for e in tokens)
        if idx != list(range(n)):
            fail(f"token indices for {rid} are not 0..{n - 1}: {idx}")
        joined = "".join(e["text"] for e in sorted(tokens, key=lambda e: e["index"]))
        if joined != ref:
            fail(f"token texts for {rid} do not concatenate to the done text:\n  {joined!r}\n  {ref!r}")
        usage = done.get("usage", {})
        if usage.get("completion_tokens") != n:
            fail(f"done usage.completion_tokens for {rid} is {usage.get('completion_tokens')}, expected {n}")
        print(f"ok: {rid}: {n} token events, done text equals fleet generate ({len(ref)} chars), "
              f"finish_reason={done.get('finish_reason')}, timings={json.dumps(done.get('timings'))}")
        return 0
    if cmd == "error":
        rid, code, path = argv[2:5]
        evs = [e for e in of_id(load(path), rid) if e.get("type") == "error"]
        if not evs:
            fail(f"no error event for {rid} in {path}")
        got = evs[0].get("error", {}).get("code")
        if got != code:
            fail(f"error event for {rid} has code {got!r}, expected {code!r}: {evs[0]}")
        print(f"ok: {rid}: error event {code}: {evs[0]['error'].get('message')}")
        return 0
    if cmd in ("has-dead-letter", "dead-letter"):
        key = argv[2]
        path = argv[3] if cmd == "has-dead-letter" else argv[4]
        recs = [r for r in load(path) if isinstance(r.get("source"), dict) and r["source"].get("key") == key]
        if cmd == "has-dead-letter":
            return 0 if recs else 1
        code = argv[3]
        if not recs:
            fail(f"no dead-letter record with source key {key} in {path}")
        got = recs[0].get("error", {}).get("code")
        if got != code:
            fail(f"dead-letter record for {key} has code {got!r}, expected {code!r}: {recs[0]}")
        print(f"ok: dead-letter {key}: {code}, value {recs[0].get('value', recs[0].get('value_base64'))!r}")
        return 0
    if cmd == "same-events":
        a, b = load(argv[2]), load(argv[3])
        for e in a:
            if e.get("type") not in ("token", "done", "error") or "id" not in e:
                fail(f"{argv[2]}: not a results event: {e}")
        ca = collections.Counter(json.dumps(e, sort_keys=True) for e in a)
        cb = collections.Counter(json.dumps(e, sort_keys=True) for e in b)
        if ca != cb:
            fail(f"{argv[2]} ({len(a)} events) and {argv[3]} ({len(b)} events) differ: "
                 f"only in the first {list((ca - cb).elements())[:3]}, only in the second {list((cb - ca).elements())[:3]}")
        print(f"ok: {len(a)} events, the same in {argv[2]} and {argv[3]}")
        return 0
    if cmd == "count":
        rid, path = argv[2:4]
        evs = load(path)
        print(len(evs) if rid == "*" else len(of_id(evs, rid)))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

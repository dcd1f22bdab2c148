#!/usr/bin/python3
"""Parses Prometheus text exposition with the reference parser (python3-prometheus-client:
prometheus_client.parser.text_string_to_metric_families) and prints what it read as JSON:
{"families": [{"name", "type", "help", "samples": [{"name", "labels", "value"}]}]}
(value as text: repr of the float, so +Inf/NaN survive JSON). Reads the file named by argv[1],
or stdin. Exits 1 with the parser's complaint when the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = open(sys.argv[1], encoding="utf-8").read() if len(sys.argv) > 1 else sys.stdin.read()
    try:
        families = []
        for fam in text_string_to_metric_families(text):
            families.append({
                "name": fam.name,
                "type": fam.type,
                "help": fam.documentation,
                "samples": [{"name": s.name, "labels": dict(s.labels), "value": repr(float(s.value))}
                            for s in fam.samples],
            })
    except Exception as e:  # the parser raises ValueError (and others) on malformed text
        print(f"parse error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump({"families": families}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())

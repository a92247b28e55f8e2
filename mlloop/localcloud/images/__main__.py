"""`python -m mlloop.localcloud.images build [--force]`: build the SageMaker image environments (make setup)."""

from __future__ import annotations

import argparse

from mlloop.localcloud.images import IMAGES, build_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlloop.localcloud.images")
    parser.add_argument("command", choices=["build", "list"])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    if args.command == "build":
        for note in build_all(force=args.force):
            print(f"note: {note}")
    for image in IMAGES:
        state = "built" if image.is_built() else "not built"
        python = image.manifest().get("python_version", "")
        print(f"{image.repository}:{image.tag_prefix}  {state}  {image.venv}  {python}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

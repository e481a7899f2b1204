"""Command line: ``tasknas demo | spaces``."""
from __future__ import annotations

import argparse
import sys


def _spaces(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tasknas spaces", description="List the built-in search spaces.")
    parser.parse_args(argv)
    from .core import create_space, list_spaces, space_of

    for name in list_spaces():
        space = space_of(create_space(name))
        print(f"{name:28s} {len(space):3d} choices  {space.size():.3g} archs")
    return 0


def _demo(argv: list[str]) -> int:
    from .demo import main

    return main(argv)


COMMANDS = {"demo": _demo, "spaces": _spaces}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: tasknas {" + ",".join(COMMANDS) + "} ...\n\n"
              "  demo    one-shot search on generated images (offline, a few minutes)\n"
              "  spaces  list the built-in search spaces")
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        print(f"tasknas: unknown command {argv[0]!r}; expected one of {sorted(COMMANDS)}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""The `gcis` command line: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import logging
import sys

from gcis.cli import adapt, datalist, evaluate, model_info, prune, segment, tasks, train

COMMANDS = (tasks, model_info, prune, segment, evaluate, datalist, train, adapt)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gcis", description="General CT image segmentation with text prompts.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"gcis {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

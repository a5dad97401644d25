"""`gcis tasks`: list the task catalogue."""

from __future__ import annotations

import json

from gcis.catalogue import load_catalogue


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="list the catalogue of CT structures and lesions")
    parser.add_argument("--json", action="store_true", help="print a JSON list of task objects")
    parser.add_argument("--catalogue", help="catalogue JSON file (default: the one shipped with gcis)")
    parser.set_defaults(run=run)


def run(args) -> int:
    catalogue = load_catalogue(args.catalogue)
    if args.json:
        print(json.dumps([task.to_json() for task in catalogue], indent=2))
        return 0
    print(f"{'id':>4}  {'name':<36} {'category':<9} {'tubular':<7} SNOMED CT")
    for task in catalogue:
        code = task.snomed["property_type"]
        side = f" ({task.laterality})" if task.laterality else ""
        print(f"{task.id:>4}  {task.name:<36} {task.category:<9} {str(task.tubular).lower():<7} "
              f"{code['code']} {code['meaning']}{side}")
    print(f"{len(catalogue)} tasks")
    return 0

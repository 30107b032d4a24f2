"""`grounding_dino schema --write | --check`: the generated schemas, templates and skill_info
(gdino.schema_gen), in both copies: the reviewable one at the repository root and the packaged one in
gdino/resources that installed code reads."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true",
                      help="regenerate schemas/ and references/ (and their packaged copy) from gdino.config")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if either copy differs from what the generator writes")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: this checkout)")


def run(args: argparse.Namespace) -> int:
    from gdino.schema_gen import ROOT, check_files, generated_files, write_files

    root = args.root or ROOT  # gdino.schema_gen pulls in pydantic: imported here so --help stays fast
    if args.write:
        written = write_files(root)
        print(f"wrote {len(written)} file(s)" + "".join(f"\n  {w}" for w in written))
        return 0
    problems = check_files(root)
    if problems:
        print(f"{len(problems)} generated file(s) out of date; run `grounding_dino schema --write`:",
              file=sys.stderr)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1
    print(f"schemas/ and references/ and their packaged copy are up to date ({len(generated_files())} files each)")
    return 0

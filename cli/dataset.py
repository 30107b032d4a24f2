"""`grounding_dino dataset generate [<dir>]` and `grounding_dino dataset check -e spec.yaml [--remap]`."""
from __future__ import annotations

import argparse
from pathlib import Path

from cli.args import add_spec_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset_command", metavar="<command>", required=True)
    gen = sub.add_parser("generate", help="write the synthetic shapes dataset in TAO's layout",
                         description="Coloured shapes named by attribute + noun on textured backgrounds: "
                                     "<dir>/train (ODVG), <dir>/eval (COCO), <dir>/infer (raw images).")
    gen.add_argument("dir", nargs="?", default="data/shapes", help="output folder (default data/shapes)")
    gen.add_argument("--num-train", type=int, default=400, help="training images (default 400)")
    gen.add_argument("--num-val", type=int, default=100, help="evaluation images (default 100)")
    gen.add_argument("--num-infer", type=int, default=8, help="raw inference images (default 8)")
    gen.add_argument("--image-size", type=int, default=160, help="square image side in pixels (default 160)")
    gen.add_argument("--num-classes", type=int, default=6, help="number of categories (default 6, max 32)")
    gen.add_argument("--max-objects", type=int, default=4, help="most objects per image (default 4)")
    gen.add_argument("--object-size", type=float, nargs=2, default=(0.18, 0.42), metavar=("MIN", "MAX"),
                     help="object side as a fraction of the image side (default 0.18 0.42)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    check = sub.add_parser("check", help="report every problem in the configured data sources",
                           description="Checks annotations, label maps, archives and images of every configured "
                                       "source; exits 2 listing all problems.")
    add_spec_arguments(check)
    check.add_argument("--remap", action="store_true",
                       help="write <json>_remapped.json with 0-based contiguous COCO category ids and check that")
    check.add_argument("--no-decode", action="store_true", help="only check that images exist (faster)")


def run(args: argparse.Namespace) -> int:
    if args.dataset_command == "generate":
        return _run_generate(args)
    return _run_check(args)


def _run_generate(args: argparse.Namespace) -> int:
    from gdino.data.generate import COLOURS, SHAPES, GenerateOptions, generate, spec_overrides
    from gdino.errors import DatasetError

    if min(args.num_train, args.num_val) < 1 or args.image_size < 32:
        raise DatasetError("--num-train/--num-val must be >= 1 and --image-size >= 32")
    if not 1 <= args.num_classes <= len(COLOURS) * len(SHAPES):
        raise DatasetError(f"--num-classes must be between 1 and {len(COLOURS) * len(SHAPES)}")
    low, high = args.object_size
    if not 0.02 <= low <= high <= 0.9:
        raise DatasetError("--object-size needs 0.02 <= MIN <= MAX <= 0.9 (fractions of the image side)")
    paths = generate(GenerateOptions(out_dir=Path(args.dir), num_train=args.num_train, num_val=args.num_val,
                                     num_infer=args.num_infer, image_size=args.image_size,
                                     num_classes=args.num_classes, max_objects=args.max_objects,
                                     object_size=(low, high), seed=args.seed))
    print(f"wrote {args.dir}: {args.num_train} train, {args.num_val} eval, {args.num_infer} inference images")
    print("spec overrides:\n  " + " \\\n  ".join(f"'{o}'" for o in spec_overrides(paths)))
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from gdino.data.check import check_dataset_config, format_report, raise_if_failed
    from gdino.spec import load_spec

    cfg = load_spec(args.spec, list(args.overrides or ()))
    report = check_dataset_config(cfg, decode_images=not args.no_decode, remap=args.remap)
    print(format_report(report))
    for key, path in report.remapped.items():
        print(f"use: {key}={path}")
    raise_if_failed(report)
    return 0

"""Command line: `python -m trainlab run --<field> <value> ... [--json]`,
`python -m trainlab fetch [dataset ...]` and
`python -m trainlab report [--profile P] [--out DIR] notebook ...` and
`python -m trainlab claims [--profile P] [--seeds N] notebook ...`.

Exit codes: 0 for every completed run (diverged ones too), 1 when data is missing
(with the message that says how to supply it), 2 for an invalid spec or flag (one
line on stderr naming the field).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from .profiles import check_profile
from .report import missing_notebooks
from .spec import DATASETS, Spec, SpecError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        print(f"trainlab: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m trainlab", description="Train one run from a spec, or fetch datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="train one run; flags set spec fields (defaults: trainlab.Spec())")
    defaults = Spec()
    for f in fields(Spec):
        run.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar="VALUE",
                         help=f"default: {getattr(defaults, f.name)}")
    run.add_argument("--json", action="store_true", help="print one JSON object with the result")
    fetch_p = sub.add_parser("fetch", help="download (or copy from TRAINLAB_MIRROR) and cache datasets")
    fetch_p.add_argument("datasets", nargs="*", default=["mnist", "fashion_mnist"],
                         help=f"any of {', '.join(DATASETS)} (default: mnist fashion_mnist)")
    rep = sub.add_parser("report", help="execute notebooks with papermill into a folder, as .ipynb and HTML")
    rep.add_argument("notebooks", nargs="+", help="notebook files")
    rep.add_argument("--profile", default="quick", help="smoke, quick or full (default: quick)")
    rep.add_argument("--out", default="reports", help="output folder (default: reports)")
    seeds = sub.add_parser("claims", help="run notebooks over several seeds and summarise their claims' margins")
    seeds.add_argument("notebooks", nargs="+", help="notebook files")
    seeds.add_argument("--profile", default="smoke", help="smoke, quick or full (default: smoke)")
    seeds.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default: 5)")
    seeds.add_argument("--out", default="reports/seeds", help="output folder (default: reports/seeds)")
    return p


def _print_table(summary: dict) -> None:
    final = summary["final"]
    fmt = lambda v: "nan" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"device {summary['device']}, {summary['epochs_completed']} epochs in {summary['seconds']:.1f}s"
          + (", DIVERGED" if summary["diverged"] else ""))
    for k in ("train_loss", "val_loss", "val_acc", "test_acc"):
        print(f"  {k:<10} {fmt(final[k])}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:  # validate everything before torch loads and before any work
        if args.command in ("report", "claims"):
            check_profile(args.profile)
            if args.command == "claims" and args.seeds < 1:
                raise SpecError("seeds", args.seeds, "at least 1")
            problem = missing_notebooks([Path(n) for n in args.notebooks])
            if problem:
                print(f"trainlab: {problem}", file=sys.stderr)
                return 2
        elif args.command == "fetch":
            for name in args.datasets:
                if name not in DATASETS:
                    raise SpecError("dataset", name, "one of " + ", ".join(DATASETS))
        else:
            given = {f.name: getattr(args, f.name) for f in fields(Spec) if getattr(args, f.name) is not None}
            spec = Spec.from_strings(given)
    except SpecError as e:
        print(f"trainlab: invalid {'spec' if args.command == 'run' else 'argument'}: {e}", file=sys.stderr)
        return 2
    notebooks = [Path(n) for n in getattr(args, "notebooks", [])]
    if args.command == "report":
        from .report import report
        return report(notebooks, Path(args.out), args.profile)
    if args.command == "claims":
        from .report import claims_over_seeds
        return claims_over_seeds(notebooks, args.profile, list(range(args.seeds)), Path(args.out))
    from .data import DataError, fetch
    from .train import fit
    try:
        if args.command == "fetch":
            for name in args.datasets:
                print(f"{name}: {fetch(name)}")
            return 0
        run = fit(spec)
    except SpecError as e:  # a device this machine lacks
        print(f"trainlab: invalid spec: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"trainlab: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(run.summary()))
    else:
        _print_table(run.summary())
    return 0

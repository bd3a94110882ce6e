"""Command line: `python -m trainlab run --<field> <value> ... [--json]`,
`python -m trainlab sweep --<field> v1,v2,... [--seeds N] [--workers N] [--scheduler ADDRESS] [--stacked] [--json]`,
`python -m trainlab doctor --<field> <value> ... [--json]`,
`python -m trainlab fetch [dataset ...]` and
`python -m trainlab report [--profile P] [--out DIR] notebook ...` and
`python -m trainlab claims [--profile P] [--seeds N] [--first-seed S] [--workers N] notebook ...` and
`python -m trainlab site [--from DIR] [--pages DIR] [--out DIR]`.

Exit codes: 0 for every completed run (diverged ones too), 1 when data is missing
(with the message that says how to supply it), 2 for an invalid spec or flag (one
line on stderr naming the field). A sweep exits 1 when any of its runs failed
(the others are cached and printed).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from .profiles import check_profile
from .report import check_out_dir, missing_notebooks
from .spec import DATASETS, NUM_CLASSES, Spec, SpecError

if TYPE_CHECKING:  # pandas and the sweep load only when a sweep runs
    import pandas as pd

    from .sweeps import Sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        print(f"trainlab: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m trainlab", description="Train one run from a spec, or fetch datasets.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="train one run; flags set spec fields (defaults: trainlab.Spec())")
    _spec_flags(run, "VALUE", "")
    run.add_argument("--json", action="store_true", help="print one JSON object with the result")
    doc = sub.add_parser("doctor", help="train one run with probes on and print what the run doctor finds")
    _spec_flags(doc, "VALUE", "")
    doc.add_argument("--json", action="store_true",
                     help="print one JSON object {\"findings\": [{\"code\", \"evidence\", \"fix\"}], "
                          "\"run\": <as 'run --json' prints it>}")
    sw = sub.add_parser("sweep", help="train the grid of the given values, in parallel if asked; cached")
    _spec_flags(sw, "V1,V2,...", "; betas take 'b1,b2;b1,b2'")
    sw.add_argument("--seeds", type=int, help="run every point on seeds 0..N-1 (instead of --seed)")
    sw.add_argument("--workers", type=int, help="local worker processes (default: train in this process)")
    sw.add_argument("--scheduler", help="address of a Dask scheduler to train on, e.g. tcp://127.0.0.1:8786")
    sw.add_argument("--stacked", action="store_true",
                    help="train specs that differ only in lr, momentum, betas, weight decay, seed or init scale "
                         "as one stacked model (trainlab.stacked); the rest as usual")
    sw.add_argument("--json", action="store_true",
                    help="print one JSON object {\"runs\": [...]}, each run as 'run --json' prints it")
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
    seeds.add_argument("--seeds", type=int, default=5, help="how many seeds (default: 5)")
    seeds.add_argument("--first-seed", type=int, default=0,
                       help="seeds run are FIRST..FIRST+N-1 (default: 0); confirm on seeds the thresholds were not set on")
    seeds.add_argument("--out", default="reports/seeds", help="output folder (default: reports/seeds)")
    seeds.add_argument("--workers", type=int, help="notebooks executed at once (default: one per core)")
    seeds.add_argument("--datasets", default="mnist,fashion_mnist",
                       help="comma-separated datasets to run each notebook on (default: mnist,fashion_mnist)")
    site = sub.add_parser("site", help="build the course site from executed notebooks (after `report`), then check its links")
    site.add_argument("--from", dest="source", default="reports",
                      help="folder of executed notebooks and their claims/ (default: reports)")
    site.add_argument("--pages", default="notebooks", help="folder with course.md and glossary.md (default: notebooks)")
    site.add_argument("--out", default="reports/site", help="output folder (default: reports/site)")
    return p


def _spec_flags(parser: argparse.ArgumentParser, metavar: str, note: str) -> None:
    defaults = Spec()
    for f in fields(Spec):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, metavar=metavar,
                            help=f"default: {getattr(defaults, f.name)}{note if f.name == 'betas' else ''}")


def _given(args: argparse.Namespace) -> dict[str, str]:
    return {f.name: getattr(args, f.name) for f in fields(Spec) if getattr(args, f.name) is not None}


def sweep_specs(args: argparse.Namespace) -> list[Spec]:
    """The grid of a `sweep` command's values, every point validated (SpecError otherwise)."""
    from .spec import grid, parse_field
    axes = {name: [v.strip() for v in text.split(";" if name == "betas" else ",")]
            for name, text in _given(args).items()}
    if args.seeds is not None:
        if "seed" in axes:
            raise SpecError("seeds", args.seeds, "either --seeds or --seed, not both")
        if args.seeds < 1:
            raise SpecError("seeds", args.seeds, "at least 1")
        axes["seed"] = [str(i) for i in range(args.seeds)]
    if args.workers is not None and args.workers < 1:
        raise SpecError("workers", args.workers, "at least 1")
    # Values are parsed one by one, then checked together as points of the grid.
    return grid(Spec(), **{name: [parse_field(name, v) for v in values] for name, values in axes.items()})


def _print_table(summary: dict) -> None:
    final = summary["final"]
    fmt = lambda v: "nan" if v is None else f"{v:.4f}"  # noqa: E731
    print(f"device {summary['device']}, {summary['epochs_completed']} epochs in {summary['seconds']:.1f}s"
          + (", DIVERGED" if summary["diverged"] else ""))
    for k, v in final.items():  # the run's headline metrics (Run.headline)
        print(f"  {k:<10} {fmt(v)}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:  # validate everything before torch loads and before any work
        if args.command in ("report", "claims"):
            check_profile(args.profile)
            if args.command == "claims" and args.seeds < 1:
                raise SpecError("seeds", args.seeds, "at least 1")
            if args.command == "claims" and args.first_seed < 0:
                raise SpecError("first-seed", args.first_seed, "0 or more")
            if args.command == "claims" and args.workers is not None and args.workers < 1:
                raise SpecError("workers", args.workers, "at least 1")
            if args.command == "claims":
                for name in args.datasets.split(","):
                    if name not in DATASETS:
                        raise SpecError("datasets", name, "comma-separated names from " + ", ".join(DATASETS))
            problem = missing_notebooks([Path(n) for n in args.notebooks])
            if problem:
                print(f"trainlab: {problem}", file=sys.stderr)
                return 2
            check_out_dir(Path(args.out))  # a file there would fail only after the first notebook ran
        elif args.command == "site":
            from .course_site import SiteError, check_inputs
            try:
                check_inputs(Path(args.source), Path(args.pages))
            except SiteError as e:  # the site's tools are missing: nothing to fix in the arguments
                print(f"trainlab: {e}", file=sys.stderr)
                return 2
            check_out_dir(Path(args.out))
        elif args.command == "fetch":
            for name in args.datasets:
                if name not in DATASETS:
                    raise SpecError("dataset", name, "one of " + ", ".join(DATASETS))
        elif args.command == "sweep":
            specs = sweep_specs(args)
            if args.scheduler is not None:
                from .workers import check_scheduler
                check_scheduler(args.scheduler, "--scheduler")
        else:
            spec = Spec.from_strings(_given(args))
            if args.command == "doctor" and args.probe_every is None:
                # The doctor needs probes for dead, saturated, vanishing and exploding units.
                spec = spec.replace(probe_every=max(1, spec.total_steps // 20))
    except SpecError as e:
        print(f"trainlab: invalid {'spec' if args.command in ('run', 'doctor') else 'argument'}: {e}",
              file=sys.stderr)
        return 2
    notebooks = [Path(n) for n in getattr(args, "notebooks", [])]
    if args.command == "report":
        from .report import report
        return report(notebooks, Path(args.out), args.profile)
    if args.command == "claims":
        from .report import claims_over_seeds
        return claims_over_seeds(notebooks, args.profile,
                                 list(range(args.first_seed, args.first_seed + args.seeds)), Path(args.out),
                                 workers=args.workers, datasets=tuple(args.datasets.split(",")))
    if args.command == "site":
        from .course_site import SiteError, broken_links, build
        try:
            build(Path(args.source), Path(args.out), Path(args.pages))
        except SiteError as e:
            print(f"trainlab: {e}", file=sys.stderr)
            return 1
        problems = broken_links(Path(args.out))
        for line in problems:
            print(f"broken link: {line}", file=sys.stderr)
        print(f"link check: {len(problems)} broken link(s)")
        return 1 if problems else 0
    from .data import DataError, fetch
    from .train import fit
    try:
        if args.command == "fetch":
            for name in args.datasets:
                if name in NUM_CLASSES:
                    print(f"{name}: {fetch(name)}")
                else:  # tabular sets ship inside scikit-learn: check that they load
                    from .tabular import raw_tabular
                    rows = len(raw_tabular(name)["train_y"])
                    print(f"{name}: from scikit-learn ({rows} training rows; nothing to download)")
            return 0
        if args.command == "sweep":
            return _sweep(specs, args)
        run = fit(spec)
    except SpecError as e:  # a device this machine lacks
        print(f"trainlab: invalid spec: {e}", file=sys.stderr)
        return 2
    except DataError as e:
        print(f"trainlab: {e}", file=sys.stderr)
        return 1
    if args.command == "doctor":
        return _doctor(run, args.json)
    if args.json:
        print(json.dumps(run.summary()))
    else:
        _print_table(run.summary())
    return 0


def _doctor(run, as_json: bool) -> int:
    from .lessons.doctor import diagnose
    findings = diagnose(run)
    if as_json:
        print(json.dumps({"findings": [f.to_dict() for f in findings], "run": run.summary()}))
    else:
        _print_table(run.summary())
        print("run doctor:")
        for f in findings:
            print("  " + str(f).replace("\n", "\n  "))
    return 0


ACCURACY_COLUMNS = ("train_acc", "val_acc", "test_acc")


def _sweep_table(result: Sweep) -> pd.DataFrame:
    """The table a sweep prints. Accuracy means nothing for regression (it is NaN), so
    a sweep of regression runs only shows their errors (val_rmse, test_rmse) instead."""
    if result.runs and all(r.spec.task == "regression" for r in result.runs):
        return result.table.drop(columns=[c for c in ACCURACY_COLUMNS if c in result.table.columns])
    return result.table


def _sweep(specs: list[Spec], args: argparse.Namespace) -> int:
    from .sweeps import SweepError, sweep
    try:
        result, failures = sweep(specs, workers=args.workers, scheduler=args.scheduler, stacked=args.stacked), []
    except SweepError as e:
        result, failures = e.partial, e.failures
    if args.json:
        print(json.dumps({"runs": [r.summary() for r in result.runs]}))
    else:
        import pandas as pd
        with pd.option_context("display.width", 200, "display.max_rows", 1000):
            print(_sweep_table(result).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for f in failures:
        print(f"trainlab: run failed: {f}", file=sys.stderr)
    return 1 if failures else 0

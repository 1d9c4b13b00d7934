"""Command line: ``ecgstudy simulate``, ``ecgstudy curate``, ``ecgstudy run``.

- ``ecgstudy simulate --out DIR``: write the simulated cohort (PTB-XL format + ground truth + rare sets)
  with the ``simulate`` section of params.yaml, optionally resized.
- ``ecgstudy curate --source ptbxl --root DIR --out DIR``: curate a dataset into a store with the
  ``curate`` section of params.yaml, overridden by the options given; prints what was kept and excluded.
- ``ecgstudy run STAGE``: run one stage's notebook (same as ``python -m ecgstudy.run_notebook STAGE``;
  ``dvc repro STAGE`` also tracks its outputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ecgstudy import config
from ecgstudy.data.sources import READERS


def _params(args) -> dict:
    return config.load_params(args.params) if args.params or _has_repo_params() else {}


def _has_repo_params() -> bool:
    try:
        from ecgstudy.paths import repo_root

        return (repo_root() / "params.yaml").is_file()
    except FileNotFoundError:
        return False


def _simulate(args) -> int:
    from ecgstudy.simulate import write_world
    from ecgstudy.simulate.corpora import scaled_sizes

    params = _params(args)
    values = dict(params.get("simulate", {}))
    cfg = config.from_dict(config.schema("simulate"), values, "simulate")
    target = args.n_records or (round(args.n_patients * 1.25) if args.n_patients else None)
    if target is not None:  # the downstream corpus gets the size asked for; the others keep their ratio to it
        downstream = next(c.name for c in cfg.corpora if c.role == "downstream")
        values["sizes"] = {k: config.to_dict(v) for k, v in
                           scaled_sizes(cfg.sizes, target / cfg.sizes[downstream].records).items()}
        if args.n_patients:
            values["sizes"][downstream] = {"patients": args.n_patients, "records": max(args.n_patients, target)}
        cfg = config.from_dict(config.schema("simulate"), values, "simulate")
    seed = args.seed if args.seed is not None else params.get("seed", 0)
    out = write_world(cfg, args.out, seed=seed, overwrite=args.overwrite)
    sizes = ", ".join(f"{name} {s.records} records / {s.patients} patients" for name, s in cfg.sizes.items())
    print(f"wrote {sizes} (+ rare sets) to {out} (seed {seed})")
    return 0


def _curate(args) -> int:
    from ecgstudy.data import curation as curate

    params = _params(args)
    values = dict(params.get("curate", {}))
    overrides = {
        "preset": args.preset,
        "fs": args.fs,
        "duration_s": args.duration_s,
        "bandpass": args.bandpass,
        "notch": args.notch,
        "normalise": args.normalise,
        "n_workers": args.workers,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    if args.external_sites is not None:
        values["external_sites"] = args.external_sites
    cfg = config.from_dict(curate.CurateConfig, values, "curate")
    seed = args.seed if args.seed is not None else params.get("seed", 0)
    summary = curate.curate(args.source, args.root, args.out, cfg, seed=seed)
    print(f"curated {summary['root']} ({args.source}) -> {args.out}")
    print(f"  fs {cfg.fs} Hz, {cfg.duration_s} s, normalise {cfg.normalise} (applied at load time)")
    print(curate.summary_table(summary).to_string(index=False))
    print("  splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    return 0


def _run(args) -> int:
    from ecgstudy import run_notebook

    return run_notebook.main([args.stage] + (["--params", str(args.params)] if args.params else []))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecgstudy", description="ECG foundation-model study tools")
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write the simulated cohort in PTB-XL format")
    sim.add_argument("--out", type=Path, required=True, help="output folder (must be new or empty)")
    sim.add_argument("--n-records", type=int, default=None, help="downstream-corpus records; the other corpora keep their ratio to it (default: params.yaml)")
    sim.add_argument("--n-patients", type=int, default=None, help="downstream-corpus patients (default: the same ratio to records as params.yaml)")
    sim.add_argument("--seed", type=int, default=None, help="master seed (default: params.yaml seed)")
    sim.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    sim.add_argument("--params", type=Path, default=None, help="params file (default: the repository's)")
    sim.set_defaults(func=_simulate)

    cur = sub.add_parser("curate", help="curate a dataset into a store")
    cur.add_argument("--source", required=True, help="dataset format: " + ", ".join(sorted(READERS)))
    cur.add_argument("--root", type=Path, required=True, help="raw dataset folder (never modified)")
    cur.add_argument("--out", type=Path, required=True, help="store folder (replaced when curation completes)")
    cur.add_argument("--preset", default=None, help="harmonisation preset (ptbxl_benchmark, ecgfounder, ecg_fm)")
    cur.add_argument("--fs", type=int, default=None, help="store sampling rate, Hz")
    cur.add_argument("--duration-s", type=float, default=None, help="store record length, s")
    cur.add_argument("--bandpass", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"), help="Hz")
    cur.add_argument("--notch", type=float, default=None, help="powerline notch, Hz")
    cur.add_argument("--normalise", default=None, help="per_lead_zscore | record_zscore | none")
    cur.add_argument("--external-sites", nargs="*", default=None, help="sites held out as split 'external'")
    cur.add_argument("--workers", type=int, default=None, help="reader processes (0 = one per core)")
    cur.add_argument("--seed", type=int, default=None, help="split seed (default: params.yaml seed)")
    cur.add_argument("--params", type=Path, default=None, help="params file (default: the repository's)")
    cur.set_defaults(func=_curate)

    run = sub.add_parser("run", help="run one stage's notebook")
    run.add_argument("stage", choices=list(config.STAGE_SECTIONS))
    run.add_argument("--params", type=Path, default=None, help="params file (default: the repository's)")
    run.set_defaults(func=_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (config.ConfigError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

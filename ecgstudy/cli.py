"""Command line: ``ecgstudy simulate``, ``ecgstudy curate``, ``ecgstudy run``.

- ``ecgstudy simulate --out DIR``: write the simulated cohort (PTB-XL format + ground truth + rare sets)
  with the ``simulate`` section of params.yaml, optionally resized.
- ``ecgstudy curate --source ptbxl --root DIR --out DIR``: curate a dataset into a store with the
  ``curate`` section of params.yaml, overridden by the options given; prints what was kept and excluded.
- ``ecgstudy run STAGE``: run one stage's notebook (same as ``python -m ecgstudy.run_notebook STAGE``;
  ``dvc repro STAGE`` also tracks its outputs).
- ``ecgstudy predict --checkpoint C.pt --source wfdb --root DIR --out FILE``: a classifier's probabilities
  and decisions for every record of a folder (:mod:`ecgstudy.apply.predict`).
- ``ecgstudy embed --checkpoint E.pt --source wfdb --root DIR --out FILE``: an encoder's embeddings
  (:mod:`ecgstudy.apply.embed`).
- ``ecgstudy describe C.pt``: print a checkpoint's model card (:mod:`ecgstudy.apply.cards`).
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
    if args.length_policy is not None:
        values["length_policy"] = args.length_policy
    if args.lead_alias:
        values["lead_aliases"] = {**values.get("lead_aliases", {}), **_aliases(args.lead_alias)}
    qc = {k: v for k, v in {"min_leads": args.min_leads, "bad_lead_policy": args.bad_lead_policy}.items() if v is not None}
    if args.duration_tolerance_s is not None:  # negative: accept any length (the length policy decides)
        qc["duration_tolerance_s"] = None if args.duration_tolerance_s < 0 else args.duration_tolerance_s
    if qc:
        values["qc"] = {**values.get("qc", {}), **qc}
    cfg = config.from_dict(curate.CurateConfig, values, "curate")
    seed = args.seed if args.seed is not None else params.get("seed", 0)
    summary = curate.curate(args.source, args.root, args.out, cfg, seed=seed)
    print(f"curated {summary['root']} ({args.source}) -> {args.out}")
    print(f"  fs {cfg.fs} Hz, {cfg.duration_s} s, normalise {cfg.normalise} (applied at load time)")
    if summary.get("n_rows", summary["n_kept"]) != summary["n_kept"]:
        print(f"  {summary['n_kept']} records -> {summary['n_rows']} store rows ({cfg.length_policy} policy)")
    print(curate.summary_table(summary).to_string(index=False))
    print("  splits: " + ", ".join(f"{k} {v}" for k, v in summary["splits"].items()))
    return 0


def _aliases(items: list[str]) -> dict[str, str]:
    """``["MLII=II", "ML2=II"]`` -> ``{"MLII": "II", "ML2": "II"}``; fails naming a malformed item."""
    out = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ValueError(f"--lead-alias {item!r}: expected NAME=LEAD, e.g. MLII=II")
        out[name.strip()] = target.strip()
    return out


def _apply_options(args):
    from ecgstudy.apply.inputs import ApplyOptions

    return ApplyOptions(min_leads=args.min_leads, lead_aliases=_aliases(args.lead_alias or []),
                        length_tolerance_s=args.length_tolerance_s)


def _predict(args) -> int:
    from ecgstudy.apply.predict import predict_folder, write_table

    result = predict_folder(args.checkpoint, args.source, args.root, options=_apply_options(args),
                            batch_size=args.batch_size, device=args.device, workers=args.workers,
                            aggregate=args.aggregate, progress=not args.quiet)
    out = write_table(result.table, args.out)
    table = result.table
    print(f"{args.checkpoint}: {result.protocol.describe()}")
    print(f"  {result.n_predicted} of {len(table)} records predicted -> {out}")
    _report_status(table)
    if not result.thresholds:
        print("  no thresholds stored in this checkpoint: probabilities only, no decision columns")
    if result.n_predicted == 0:
        print(f"error: {args.root}: no readable record could be predicted (reasons in {out})", file=sys.stderr)
        return 1
    return 0


def _report_status(table) -> None:
    counts = table["status"].value_counts()
    print("  status: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items()))
    excluded = table[table["status"] == "excluded"]
    for reason, n in excluded["reason"].value_counts().items():
        example = excluded[excluded["reason"] == reason].iloc[0]
        print(f"  excluded {reason}: {int(n)} (e.g. {example['record_id']}: {example['detail']})")


def _embed(args) -> int:
    from ecgstudy.apply.embed import embed_folder, write_embeddings

    table, z = embed_folder(args.checkpoint, args.source, args.root, options=_apply_options(args),
                            batch_size=args.batch_size, device=args.device, workers=args.workers,
                            allow_classifier=args.allow_classifier, progress=not args.quiet)
    paths = write_embeddings(table, z, args.out)
    n_ok = int((table["status"] != "excluded").sum())
    print(f"{args.checkpoint}: {n_ok} of {len(table)} records embedded ({z.shape[1]} dimensions) -> "
          + ", ".join(str(p) for p in paths))
    _report_status(table)
    if n_ok == 0:
        print(f"error: {args.root}: no readable record could be embedded (reasons in {paths[-1]})", file=sys.stderr)
        return 1
    return 0


def _describe(args) -> int:
    from ecgstudy.apply.cards import describe

    print(describe(args.checkpoint), end="")
    return 0


def _add_apply_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True, help="checkpoint file the study wrote (*.pt)")
    p.add_argument("--source", required=True, help="dataset format: " + ", ".join(sorted(READERS)))
    p.add_argument("--root", type=Path, required=True, help="folder of records (never modified)")
    p.add_argument("--out", type=Path, required=True, help="output file (.parquet or .csv; embed: .parquet or .npy)")
    p.add_argument("--batch-size", type=int, default=128, help="windows per forward pass")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, mps)")
    p.add_argument("--workers", type=int, default=1, help="reader processes (0 = one per core, 1 = in-process)")
    p.add_argument("--min-leads", type=int, default=1, help="leads a record must have (others are masked)")
    p.add_argument("--lead-alias", nargs="*", default=None, metavar="NAME=LEAD",
                   help="declared lead-name aliases, e.g. MLII=II ML2=II (modified lead II)")
    p.add_argument("--length-tolerance-s", type=float, default=1.0,
                   help="records this close to the model's stored length are cropped/padded as in training")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


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
    cur.add_argument("--length-policy", default=None, choices=["center_crop_or_pad", "start_crop_or_pad", "windows"],
                     help="records of another length: crop/pad to --duration-s, or windows (one store row per window)")
    cur.add_argument("--duration-tolerance-s", type=float, default=None,
                     help="QC: exclude records whose length differs more than this from --duration-s (negative: any length)")
    cur.add_argument("--min-leads", type=int, default=None, help="QC: leads that must be present (1-12)")
    cur.add_argument("--bad-lead-policy", default=None, choices=["exclude", "mask"],
                     help="QC: a flat, clipped or implausible lead excludes the record, or is masked")
    cur.add_argument("--lead-alias", nargs="*", default=None, metavar="NAME=LEAD",
                     help="declared lead-name aliases, e.g. MLII=II ML2=II (modified lead II)")
    cur.add_argument("--seed", type=int, default=None, help="split seed (default: params.yaml seed)")
    cur.add_argument("--params", type=Path, default=None, help="params file (default: the repository's)")
    cur.set_defaults(func=_curate)

    pred = sub.add_parser("predict", help="a classifier's probabilities and decisions for a folder of records")
    _add_apply_options(pred)
    pred.add_argument("--aggregate", default=None, choices=["max", "mean"],
                      help="window aggregation (default: the checkpoint's evaluation protocol)")
    pred.set_defaults(func=_predict)

    emb = sub.add_parser("embed", help="an encoder's embeddings of a folder of records")
    _add_apply_options(emb)
    emb.add_argument("--allow-classifier", action="store_true", help="embed with a classifier's fine-tuned encoder")
    emb.set_defaults(func=_embed)

    desc = sub.add_parser("describe", help="print a checkpoint's model card")
    desc.add_argument("checkpoint", type=Path, help="checkpoint file (*.pt)")
    desc.set_defaults(func=_describe)

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

"""Run the pretrain stage's training outside the notebook, e.g. data-parallel under torchrun.

    torchrun --standalone --nproc_per_node 2 -m ecgstudy.pretrain          # 2 processes (gloo on CPU, nccl on GPUs)
    python -m ecgstudy.pretrain --params params.yaml                        # one process

Reads the ``seed``, ``data`` and ``pretrain`` sections, trains every run (each process a shard of every
batch: the global batch is ``optim.batch_size`` x processes x ``optim.grad_accum``), and on the main
process writes what the stage writes: ``models/pretrain/<run>.pt``, ``encoder.pt``, the curves under
``reports/plots/pretrain``, the comparison table and ``reports/metrics/pretrain.json``. An interrupted
run resumes from its last finished epoch when the same command is run again. The notebook's figures can
then be drawn from these files; ``dvc repro`` itself runs the stage single-process.
"""

from __future__ import annotations

import argparse

from ecgstudy import config, distributed
from ecgstudy.outputs import stage_outputs
from ecgstudy.paths import resolve
from ecgstudy.pretrain.stage import run_pretrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgstudy.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: the repo's params.yaml)")
    args = parser.parse_args(argv)
    params = config.stage_sections("pretrain", config.load_params(args.params))
    cfg = config.stage_config("pretrain", params)
    out = stage_outputs("pretrain", models=True, plots=True)
    result = run_pretrain(cfg.pretrain, resolve(cfg.data.curated) / cfg.pretrain.store, out.models, seed=cfg.seed,
                          plots_dir=out.plots)
    if distributed.info().is_main:
        result.comparison.to_csv(out.tables / "probe_comparison.csv", index=False)
        out.write_metrics(result.metrics)
        print(result.comparison.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Run the pretrain stage's training outside the notebook, e.g. data-parallel under torchrun.

    torchrun --standalone --nproc_per_node 2 -m ecgstudy.stages.pretrain          # 2 processes (gloo on CPU, nccl on GPUs)
    python -m ecgstudy.stages.pretrain --params params.yaml                        # one process

Reads the ``seed``, ``data`` and ``pretrain`` sections, trains every run (each process a shard of every
batch: the global batch is ``optim.batch_size`` x processes x ``optim.grad_accum``), and on the main
process writes everything the stage writes (:func:`ecgstudy.stages.pretrain.stage.run`). An interrupted
run resumes from its last finished epoch when the same command is run again. ``dvc repro`` itself runs the
stage single-process, through the notebook.
"""

from __future__ import annotations

import argparse

from ecgstudy import config
from ecgstudy.engine import distributed
from ecgstudy.stages.pretrain.stage import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ecgstudy.stages.pretrain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default=None, help="params file (default: the repo's params.yaml)")
    args = parser.parse_args(argv)
    params = config.stage_sections("pretrain", config.load_params(args.params))
    cfg = config.stage_config("pretrain", params)
    result = run(cfg)
    if distributed.info().is_main:
        print(result.comparison.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

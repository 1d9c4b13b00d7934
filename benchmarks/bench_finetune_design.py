"""What the fine-tuning design costs: seconds per full fine-tune, per repeat and for the whole stage.

Measures, on this machine, the training and inference throughput (samples/s) of the encoder that
fine-tuning adapts (batch of the ``finetune`` optimiser preset, 12 leads x the store's samples, fp32 or
bf16 as the preset says), then counts the samples every run of the params.yaml design touches:

- a full fine-tune at fraction f trains ``max(epochs, ceil(min_steps / steps_per_epoch))`` epochs over
  f x n_train records (an upper bound: early stopping can end it sooner), validates ``min(epochs, max_evals)``
  times on the validation split and predicts the evaluation splits once;
- each (full strategy, fraction) trains ``len(lr_grid)`` runs on repeat 0 (the search) and one run on each
  other repeat: ``len(lr_grid) + repeats - 1`` runs;
- probes (linear_probe, random_probe) embed every record once per encoder and fit heads on cached
  features: timed by fitting one head of the probe preset (``len(weight_decay_grid) + repeats - 1`` fits
  per probe strategy and fraction).

    python benchmarks/bench_finetune_design.py                      # the params.yaml design, split sizes of the default cohort
    python benchmarks/bench_finetune_design.py --n-train 1954 --n-val 240 --n-eval 774 --threads 2

Prints one row per fraction and the stage total. Numbers depend on the machine and its load (run it niced
on an idle machine for the study's budget); a shared machine gives upper bounds.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from ecgstudy import config
from ecgstudy.engine.probes import train_probe
from ecgstudy.models import build_encoder


def throughput(encoder, batch: int, n_samples: int, bf16: bool, steps: int = 6) -> tuple[float, float]:
    """(training samples/s, inference samples/s) of ``encoder`` + a linear head on random (batch, 12, n_samples)."""
    x, mask = torch.randn(batch, 12, n_samples), torch.ones(batch, 12, dtype=torch.bool)
    y = (torch.rand(batch, 20) < 0.2).float()
    head = torch.nn.Linear(encoder.embed_dim, y.shape[1])
    opt = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.binary_cross_entropy_with_logits(head(encoder.embed(x, mask)).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    encoder.train()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    train = steps * batch / (time.perf_counter() - start)
    encoder.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        encoder.embed(x, mask)
        start = time.perf_counter()
        for _ in range(steps):
            encoder.embed(x, mask)
    return train, steps * batch / (time.perf_counter() - start)


def probe_seconds(cfg, n_train: int, dim: int, n_labels: int) -> float:
    """Seconds of one linear-head fit of the probe preset on (n_train, dim) cached features (second call: warm)."""
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(n_train, dim)).astype(np.float32), (rng.random((n_train, n_labels)) < 0.2).astype(np.float32)
    train_probe(None, z[:64], y[:64], None, None, cfg, seed=0)  # imports and first-call costs
    start = time.perf_counter()
    train_probe(None, z, y, z[: n_train // 8], y[: n_train // 8], cfg, seed=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default=None, help="params file (default: the repository's params.yaml)")
    parser.add_argument("--n-train", type=int, default=1954, help="train-split records with a task label")
    parser.add_argument("--n-val", type=int, default=240)
    parser.add_argument("--n-eval", type=int, default=774, help="records of the evaluation splits together")
    parser.add_argument("--n-labels", type=int, default=24)
    parser.add_argument("--n-samples", type=int, default=1000, help="samples per record (10 s at 100 Hz)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--arch", default="net1d")
    parser.add_argument("--preset", default="tiny")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ft = config.stage_config("finetune", config.stage_sections("finetune", config.load_params(args.params))).finetune
    encoder = build_encoder(args.arch, args.preset)
    train_sps, infer_sps = throughput(encoder, ft.optim.batch_size, args.n_samples, ft.optim.bf16)
    probe_fit = probe_seconds(ft.probe, args.n_train, encoder.embed_dim, args.n_labels)
    print(f"{args.arch}-{args.preset}, {args.threads} thread(s): train {train_sps:.0f} samples/s, inference "
          f"{infer_sps:.0f} samples/s, one probe fit on {args.n_train} records {probe_fit:.1f} s")
    full = [s for s in ft.strategies if s in ("pretrained", "scratch")]
    probes = [s for s in ft.strategies if s in ("linear_probe", "random_probe")]
    runs_full, runs_probe = len(ft.lr_grid) + ft.repeats - 1, len(ft.weight_decay_grid) + ft.repeats - 1
    total = len(probes) * (args.n_train + args.n_val + args.n_eval) / infer_sps  # features cached once per encoder
    print(f"{'fraction':>8} {'records':>7} {'epochs':>6} {'train s':>8} {'val s':>6} {'one run s':>9} {'per repeat s':>12} "
          f"{'cell s':>7}")
    for fraction in ft.fractions:
        n = max(1, math.ceil(fraction * args.n_train))
        steps_per_epoch = max(math.ceil(n / ft.optim.batch_size), 1)
        epochs = max(ft.optim.epochs, math.ceil(ft.optim.min_steps / steps_per_epoch))
        train_s = epochs * n / train_sps
        evals = min(epochs, ft.optim.max_evals) if ft.optim.max_evals else epochs
        val_s = evals * args.n_val / infer_sps + args.n_eval / infer_sps
        one = train_s + val_s
        cell = len(full) * runs_full * one + len(probes) * runs_probe * probe_fit
        total += cell
        print(f"{fraction:>8g} {n:>7d} {epochs:>6d} {train_s:>8.1f} {val_s:>6.1f} {one:>9.1f} "
              f"{len(full) * one + len(probes) * probe_fit:>12.1f} {cell:>7.1f}")
    print(f"design: {len(full)} full x {runs_full} runs (grid {list(ft.lr_grid)} + {ft.repeats - 1} repeats), "
          f"{len(probes)} probes x {runs_probe} fits, {len(ft.fractions)} fractions; stage upper bound "
          f"{total / 60:.1f} min at {args.threads} thread(s)")


if __name__ == "__main__":
    main()

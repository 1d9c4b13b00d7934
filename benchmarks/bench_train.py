"""Training and inference throughput of every encoder preset, and the data loader's, on this machine.

For each architecture and size preset (Net1D tiny..base, wav2vec2 tiny..base) it times, in fp32 and in
bf16 autocast, (a) training steps: forward + a mean-pooled linear head's BCE + backward + AdamW step, and
(b) inference: ``embed`` without gradients, on 12-lead inputs of the store's shape (default 10 s at 100 Hz
= 12 x 1000 samples). The model FLOPs of one forward are counted with torch's FlopCounterMode; a training
step counts as 3x forward. Achieved TFLOP/s is printed, and on a GPU with ``--peak-tflops`` the model
FLOP utilisation (MFU). Then it times the store loader (ECGDataset + DataLoader, random crops, the
training path of every stage) on a curated store and flags presets whose training consumes samples faster
than one loader process delivers them.

    python benchmarks/bench_train.py                      # every preset, CPU, 12 x 1000
    python benchmarks/bench_train.py --arch net1d --presets tiny small --batch 32
    python benchmarks/bench_train.py --device cuda --samples 2500 --peak-tflops 989   # H100 bf16 dense

Numbers depend on the machine and its load; the first batches (warm-up) are not timed.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ecgstudy.models import ENCODERS, build_encoder, count_parameters


def presets_of(arch: str) -> list[str]:
    return list(importlib.import_module(f"ecgstudy.models.{arch}").PRESETS)


def forward_flops(encoder: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        encoder.embed(x, mask)
    return int(counter.get_total_flops())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_train(encoder, x, mask, y, device, bf16: bool, steps: int, warmup: int) -> float:
    head = torch.nn.Linear(encoder.embed_dim, y.shape[1]).to(device)
    params = list(encoder.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-4)
    encoder.train()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = head(encoder.embed(x, mask))
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


@torch.no_grad()
def time_infer(encoder, x, mask, device, bf16: bool, steps: int, warmup: int) -> float:
    encoder.eval()
    for _ in range(warmup):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            encoder.embed(x, mask)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            encoder.embed(x, mask)
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def loader_rate(store_dir: Path | None, crop: int, batch: int, n_batches: int) -> tuple[float, str]:
    """Samples/s of the training loader (random crops, per-lead z-score) from a curated store."""
    from ecgstudy.data.store import ECGDataset, Store
    from ecgstudy.engine.train import make_loader

    tmp = None
    if store_dir is None or not (store_dir / "meta.json").is_file():
        from ecgstudy import config
        from ecgstudy.data.curation import CurateConfig
        from ecgstudy.data.world import curate_world
        from ecgstudy.simulate import SimulateConfig, write_cohort

        tmp = tempfile.TemporaryDirectory(prefix="bench_train_")
        sizes = {"foundation": {"patients": 10, "records": 10}, "downstream": {"patients": 300, "records": 300},
                 "external": {"patients": 10, "records": 10}}
        sim = config.from_dict(SimulateConfig, {"sizes": sizes}, "simulate")
        raw = write_cohort(sim, Path(tmp.name) / "raw", seed=0)
        curate_world(raw, Path(tmp.name), CurateConfig(), seed=0, progress=False)
        store_dir = Path(tmp.name) / "main"
    store = Store(store_dir)
    rows = store.indices("train")
    dataset = ECGDataset(store, rows, crop=min(crop, store.n_samples), random_crop=True, seed=0)
    loader = make_loader(dataset, batch, shuffle=True, seed=0, drop_last=True)
    seen, start = 0, time.perf_counter()
    epoch = 0
    while seen < n_batches * batch:
        epoch += 1
        dataset.set_epoch(epoch)
        for item in loader:
            seen += len(item["x"])
            if seen >= n_batches * batch:
                break
    rate = seen / (time.perf_counter() - start)
    where = f"{store_dir} ({len(rows)} train records)" if tmp is None else "a temporary 300-record simulated store"
    if tmp is not None:
        tmp.cleanup()
    return rate, where


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="*", default=sorted(ENCODERS), help="architectures (default all)")
    parser.add_argument("--presets", nargs="*", default=None, help="presets (default all of each arch)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--samples", type=int, default=1000, help="input length (samples per lead)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="device peak for MFU (H100 bf16 dense: 989)")
    parser.add_argument("--store", type=Path, default=Path("data/curated/main"), help="curated store for the loader timing")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 12, args.samples, device=device)
    mask = torch.ones(args.batch, 12, dtype=torch.bool, device=device)
    y = (torch.rand(args.batch, 24, device=device) < 0.2).float()
    print(f"device {device}, torch threads {torch.get_num_threads()}, input {args.batch} x 12 x {args.samples}")
    header = f"{'encoder':<18}{'params':>10}{'GFLOP/sample':>14}{'precision':>10}{'train/s':>10}{'infer/s':>10}{'train TFLOP/s':>15}"
    print(header + ("  MFU" if args.peak_tflops else ""))
    train_rates: dict[str, float] = {}
    for arch in args.arch:
        for preset in args.presets or presets_of(arch):
            if preset not in presets_of(arch):
                continue
            torch.manual_seed(0)
            encoder = build_encoder(arch, preset).to(device)
            flops = forward_flops(encoder, x[:1], mask[:1])
            for precision, bf16 in (("fp32", False), ("bf16", True)):
                train = time_train(encoder, x, mask, y, device, bf16, args.steps, args.warmup)
                infer = time_infer(encoder, x, mask, device, bf16, args.steps, args.warmup)
                achieved = 3 * flops * train / 1e12
                line = (f"{arch + '-' + preset:<18}{count_parameters(encoder) / 1e6:>9.2f}M{flops / 1e9:>14.3f}"
                        f"{precision:>10}{train:>10.1f}{infer:>10.1f}{achieved:>15.4f}")
                if args.peak_tflops:
                    line += f"  {100 * achieved / args.peak_tflops:.1f}%"
                print(line, flush=True)
                train_rates[f"{arch}-{preset} {precision}"] = train
            del encoder
    rate, where = loader_rate(args.store, args.samples, args.batch, n_batches=40)
    print(f"\nloader: {rate:.0f} samples/s from {where} (one process, random {args.samples}-sample crops)")
    slower = [name for name, r in train_rates.items() if r > rate]
    if slower:
        print(f"LOADER IS SLOWER THAN TRAINING for: {', '.join(slower)} -> use DataLoader workers or a faster store")
    else:
        print("loader is faster than training for every preset measured")


if __name__ == "__main__":
    main()

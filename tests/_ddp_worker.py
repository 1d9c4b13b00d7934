"""Data-parallel fits for tests/test_distributed.py.

Run as ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/_ddp_worker.py OUT``: every
process runs :func:`main`, which trains three small models with :func:`ecgstudy.engine.train.fit` and saves what
the test compares to ``OUT/rank<r>.pt``. :func:`mlp_run` is also imported by the test for the
one-process reference.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from _synthetic import Blobs

from ecgstudy.models import build_encoder
from ecgstudy.objectives.masked import MAEOptions
from ecgstudy.objectives.base import ObjectiveContext, build_objective
from ecgstudy.engine.train import TrainConfig, fit

GLOBAL_BATCH = 16  # samples per optimizer step, whatever the number of processes





class Records(Dataset):
    """Synthetic 12-lead records (12, 400): per-record rhythm and lead gains."""

    def __init__(self, n=32, seed=0):
        rng = np.random.default_rng(seed)
        t = np.arange(400) / 100.0
        beats = np.exp(-(((t[None] * rng.uniform(0.8, 2.0, (n, 1)) + rng.uniform(0, 1, (n, 1))) % 1.0 - 0.5) ** 2) / 0.005)
        self.x = (rng.normal(0, 1, (n, 12, 1)) * beats[:, None] + 0.1 * rng.normal(size=(n, 12, 400))).astype(np.float32)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.x[i]), "lead_mask": torch.ones(12, dtype=torch.bool)}


def _bce(model, batch):
    return F.binary_cross_entropy_with_logits(model(batch["x"]).float(), batch["y"]), {}


def mlp_run(world_size: int, out: Path | None = None) -> tuple[nn.Module, object]:
    """A batch-norm-free MLP, global batch 16 = (16 / world_size) per process, 4 epochs, validation."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
    val = Blobs(40, seed=1)
    rank = int(os.environ.get("RANK", 0))

    def validate(m):
        if out is not None:
            (out / f"validated_by_rank{rank}").touch()
        with torch.no_grad():
            return {"val_loss": float(_bce(m, {"x": torch.from_numpy(val.x), "y": torch.from_numpy(val.y)[:, None]})[0])}

    cfg = TrainConfig(epochs=4, batch_size=GLOBAL_BATCH // world_size, lr=0.02, bf16=False, progress=False, device="cpu")
    history_csv = out / f"history_rank{rank}.csv" if out is not None else None
    result = fit(model, _bce, Blobs(96), cfg, seed=0, validate=validate, history_csv=history_csv)
    return model, result


def _mae_run(out: Path) -> dict:
    """Net1D tiny + the mae objective (batch norm, caller generator), early stopping after epoch 2."""
    torch.manual_seed(0)
    encoder = build_encoder("net1d", "tiny")
    context = ObjectiveContext(fs=100.0, n_samples=400)
    objective = build_objective("mae", MAEOptions(patch_s=0.25, decoder_hidden=16), encoder, context)
    model = nn.ModuleDict({"encoder": encoder, "objective": objective})
    masks = torch.Generator().manual_seed(11)
    draws = []

    def loss_fn(m, batch):
        draws.append(masks.initial_seed())
        return m["objective"](m["encoder"], batch, masks)

    cfg = TrainConfig(epochs=4, batch_size=4, lr=3e-3, patience=1, bf16=True, progress=False, device="cpu")
    scripted = iter([1.0, 2.0, 3.0, 4.0])  # best at epoch 1, no improvement at 2 -> stop
    result = fit(model, loss_fn, Records(), cfg, seed=0, validate=lambda m: {"val_loss": next(scripted)},
                 generators={"masks": masks}, drop_last=True)
    return {"state": model.state_dict(), "epochs": len(result.history), "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early, "mask_seed": draws[0], "history": result.history.to_dict("list")}


class _Interrupt(Exception):
    pass


def _resume_run(out: Path) -> dict:
    """Dropout + a caller generator: uninterrupted vs interrupted after epoch 2 and resumed, per rank."""

    def run(state_path, stop_at=None):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))
        noise = torch.Generator().manual_seed(5)

        def loss_fn(m, batch):
            return _bce(m, {"x": batch["x"] + 0.3 * torch.randn(batch["x"].shape, generator=noise), "y": batch["y"]})

        def interrupt(row):
            if row["epoch"] == stop_at:
                raise _Interrupt

        cfg = TrainConfig(epochs=4, batch_size=8, lr=0.02, bf16=True, progress=False, device="cpu")
        result = fit(model, loss_fn, Blobs(96), cfg, seed=1, generators={"noise": noise}, state_path=state_path,
                     on_epoch_end=interrupt)
        return model, result

    reference, expected = run(None)
    try:
        run(out / "state.pt", stop_at=2)
    except _Interrupt:
        pass
    resumed, result = run(out / "state.pt")
    columns = [c for c in expected.history if c not in ("seconds", "samples_per_s")]
    return {
        "params_equal": all(torch.equal(a, b) for a, b in zip(reference.parameters(), resumed.parameters())),
        "history_equal": expected.history[columns].equals(result.history[columns]),
        "resumed_after": result.resumed_after,
    }


def _sync_batchnorm_on_cpu() -> str:
    """What torch's SyncBatchNorm does with CPU tensors in a gloo group ("ran" or the error message)."""
    layer = nn.SyncBatchNorm(4).train()
    try:
        layer(torch.randn(8, 4, 5))
    except ValueError as exc:
        return str(exc)
    return "ran"


def main(out: Path) -> None:
    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    model, result = mlp_run(world, out)
    report = {"world_size": world, "mlp": model.state_dict(), "mlp_history": result.history.to_dict("list")}
    report["mae"] = _mae_run(out)
    report["resume"] = _resume_run(out)
    report["sync_batchnorm_cpu"] = _sync_batchnorm_on_cpu()
    torch.save(report, out / f"rank{rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

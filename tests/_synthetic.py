"""Small synthetic data shared by the training and objective tests (no files, fully seeded)."""

import numpy as np
import torch
from torch.utils.data import Dataset


class Blobs(Dataset):
    """Two gaussian classes in 8 dimensions (a learnable toy task): items {"x": (8,), "y": (1,)}."""

    def __init__(self, n=256, seed=0):
        rng = np.random.default_rng(seed)
        self.y = (rng.random(n) < 0.5).astype(np.float32)
        self.x = (rng.normal(size=(n, 8)) + 1.5 * self.y[:, None]).astype(np.float32)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x": torch.from_numpy(self.x[i]), "y": torch.tensor([self.y[i]])}


def structured_batch(n=16, length=400, seed=0):
    """Records (n, 12, length) at 100 Hz with their own rhythm, lead gains and waveform: segments of one
    record look alike. Returns {"x": float32 tensor, "lead_mask": all-True bool (n, 12)}."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 100.0
    x = np.empty((n, 12, length), np.float32)
    for i in range(n):
        rate, phase, width = rng.uniform(0.8, 2.0), rng.uniform(0, 1), rng.uniform(0.001, 0.01)
        beat = np.exp(-(((t * rate + phase) % 1.0 - 0.5) ** 2) / width)
        x[i] = rng.normal(0, 1, (12, 1)) * beat + 0.05 * rng.normal(size=(12, length))
    return {"x": torch.from_numpy(x), "lead_mask": torch.ones(n, 12, dtype=torch.bool)}

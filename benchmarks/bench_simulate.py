"""Speed of the simulated cohort: records/s of simulation alone and of simulation + writing.

Run: ``python benchmarks/bench_simulate.py`` (default config; about 1-2 minutes on 2 cores).
Options: ``--n-sim N`` records for the simulation-only timing (one process), ``--no-write`` to skip
writing the full default cohort, ``--workers W`` to override the config's worker count.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

from ecgstudy.simulate import SimulateConfig, write_cohort
from ecgstudy.simulate.cohort import plan_world, simulate_planned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sim", type=int, default=300, help="records simulated for the simulation-only timing")
    parser.add_argument("--no-write", action="store_true", help="skip the full write_cohort timing")
    parser.add_argument("--workers", type=int, default=None, help="worker processes for write_cohort")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = SimulateConfig()
    if args.workers is not None:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    n_world = sum(s.records for s in cfg.sizes.values())
    n_total = n_world + len(cfg.rare.codes) * (cfg.rare.n_cases + cfg.rare.n_controls)
    print(f"default world: {n_world} records of {sum(s.patients for s in cfg.sizes.values())} patients + {n_total - n_world} rare-set "
          f"records; {os.cpu_count()} CPU cores, workers={cfg.workers}")

    start = time.perf_counter()
    main_plans = [p for part in plan_world(cfg, args.seed).values() for p in part]
    plan_s = time.perf_counter() - start
    plans = main_plans[: args.n_sim]
    start = time.perf_counter()
    for plan in plans:
        simulate_planned(plan, cfg)
    sim_s = time.perf_counter() - start
    print(f"planning the cohort: {plan_s:.2f} s")
    rate = len(plans) / sim_s
    print(f"simulation alone (1 process): {rate:.1f} records/s ({1000 / rate:.1f} ms/record)")

    if not args.no_write:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            out = write_cohort(cfg, Path(tmp) / "raw", seed=args.seed)
            total_s = time.perf_counter() - start
            size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
        print(f"simulation + writing (write_cohort, {cfg.workers} workers): {n_total / total_s:.1f} records/s, "
              f"{total_s:.1f} s for {n_total} records, {size:.0f} MiB")


if __name__ == "__main__":
    main()

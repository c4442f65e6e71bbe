"""The BPTT timings as pytest-benchmark cases: run by benchmarks.bptt.time_grid, not by the
test suite (`python -m pytest benchmarks/bptt_cases.py --benchmark-only --benchmark-json=F`).

One case per shape of the grid named by $BENCH_BPTT_GRID (full, quick or tiny), dtype and
side; the sides of one shape and dtype run one after the other.
"""

import os

import pytest
import torch

from benchmarks.bptt import DTYPES, GRIDS, SIDES, step_functions

GRID = GRIDS[os.environ.get("BENCH_BPTT_GRID", "quick")]
torch.set_num_threads(1)


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GRID, ids=lambda s: "N={} T={} H={}".format(*s))
def test_bptt_step(benchmark, shape, dtype, side):
    fns, _ = step_functions(*shape, dtype)
    benchmark.extra_info.update(N=shape[0], T=shape[1], H=shape[2], dtype=dtype, side=side)
    benchmark(fns[side])

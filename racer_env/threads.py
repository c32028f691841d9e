"""Thread settings of a racer process: how its thread pools wait, chosen before they start.

A racer process has two thread pools: torch's OpenMP pool (GNU libgomp in the PyPI wheels; also MKL's threads,
which run on it) and numpy's OpenBLAS pool. Both read their settings from the environment once, when the library
is loaded, so they are set here before the first ``import torch`` / ``import numpy``; afterwards they change
nothing (``configure_threads`` says so by returning what it could not apply).

Why (issue 27, ``benchmarks/threads.py``): with libgomp's default wait policy an idle worker thread spins for a
while before it sleeps. On a quiet machine that only burns a core; beside another CPU-bound process on the same
cores (a second training, a benchmark, a CI job) the spinning thread holds the core that the thread it waits for
needs, and a VQ-VAE training step took 2-14x as long as on the quiet machine. ``OMP_WAIT_POLICY=PASSIVE`` makes
a waiting thread sleep at once: beside a second training each takes about twice its quiet time (a fair share of
the cores), and on the quiet machine a step is no slower (it was faster on the machines measured).

The process's own choice wins: a variable already set in the environment is left as it is, so
``OMP_WAIT_POLICY=ACTIVE racer ...`` or ``OMP_NUM_THREADS=1 racer ...`` still do what they say.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

#: environment settings racer applies by default, and why each (see the module docstring).
DEFAULT_THREAD_ENV: dict[str, str] = {
    # idle OpenMP workers (torch's intra-op pool, MKL) sleep instead of spinning for the core another process needs
    "OMP_WAIT_POLICY": "PASSIVE",
}

#: modules whose thread pools read the environment when they are loaded.
_POOL_MODULES = ("torch",)


def configure_threads(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Apply ``DEFAULT_THREAD_ENV`` to ``environ`` (``os.environ`` by default) where the variable is unset.

    Returns the settings that were added but come too late for this process (its torch is already loaded):
    empty when everything took effect. Child processes (multiprocessing workers, torchrun ranks) inherit the
    environment, so they get the same settings.
    """
    env = os.environ if environ is None else environ
    added = {k: v for k, v in DEFAULT_THREAD_ENV.items() if k not in env}
    env.update(added)
    loaded = any(m in sys.modules for m in _POOL_MODULES)
    return added if loaded and environ is None else {}


def thread_settings() -> dict[str, object]:
    """The thread settings in force in this process: torch's intra-op and inter-op threads, every native thread
    pool threadpoolctl finds (OpenMP, BLAS), and the environment variables that set them. For logs and
    benchmarks (imports torch)."""
    import torch
    from threadpoolctl import threadpool_info

    pools = [{"library": p.get("prefix"), "api": p.get("user_api"), "threads": p.get("num_threads")}
             for p in threadpool_info()]
    env = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                          "OPENBLAS_NUM_THREADS", "GOMP_SPINCOUNT")}
    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads(),
            "pools": pools, "env": env, "cpus": len(os.sched_getaffinity(0))}

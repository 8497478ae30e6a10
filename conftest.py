"""How the suite is split across pytest-xdist workers (``-n`` in pyproject's addopts, ``--dist loadgroup``).

One test module goes to one worker, so a module-scoped fixture (most train a bundle) is built once, not once per
worker that happens to get one of its tests. Every module that starts a local Ray cluster shares one group:
two ``ray.init()`` on one machine at once may find each other's cluster instead of starting their own.
Each worker (and every process a test starts, which inherits it) gets ``OMP_NUM_THREADS`` = its share of the
cores, as torchrun does for its processes: N workers of all-cores thread pools would fight over the cores.
"""

from __future__ import annotations

import os

import pytest

RAY_MODULES = {"test_ray.py", "test_ray_serve.py"}


def pytest_configure(config: pytest.Config) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in xdist's workers only
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch
        from verticals.runtime import available_cores

        threads = max(1, available_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into the scheduler's groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = "ray" if item.path.name in RAY_MODULES else str(item.path)
        item.add_marker(pytest.mark.xdist_group(group))

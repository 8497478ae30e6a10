"""How the suite is spread over pytest-xdist workers (``-n`` in pyproject's addopts; ``-n 0`` for one process).

One test module goes to one worker, so a module-scoped fixture (most train a bundle) is built once, not once per
worker that happens to get one of its tests; both modules that start a local Ray cluster go to the same worker:
two clusters up at once on one machine make Ray's address lookup fail ("Found multiple active Ray instances").
(``--dist loadgroup`` with ``xdist_group`` marks would say this, but xdist 3.8 marks a group by rewriting
``item._nodeid``, which pytest 9 no longer reads: the groups were silently ignored.)

Each worker, and every process its tests start, gets ``OMP_NUM_THREADS`` = its share of the cores, as torchrun
does for its processes: N workers each running a thread per core would fight over the cores.
"""

from __future__ import annotations

import os

import pytest

RAY_MODULES = {"test_ray.py", "test_ray_serve.py"}


def module_scope(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "ray" if path.rsplit("/", 1)[-1] in RAY_MODULES else path


class ModuleScheduling:
    """xdist plugin: the default ``--dist load`` becomes one scope per module (Ray's modules one scope)."""

    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: object) -> object | None:
        if config.getvalue("dist") != "load":  # an explicit --dist is the user's choice
            return None
        from xdist.scheduler import LoadScopeScheduling

        class Scheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return module_scope(nodeid)

        return Scheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.hasplugin("xdist"):  # the hook exists only where xdist is installed
        config.pluginmanager.register(ModuleScheduling(), "verticals-module-scheduling")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))  # set in xdist's workers only
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        import torch
        from verticals.runtime import available_cores

        threads = max(1, available_cores() // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)

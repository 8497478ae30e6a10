"""Hardware-dependent choices: numeric precision, threads, device. Decided at run time, never assumed."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext

import torch


def device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s weights live; CPU for a module without PyTorch weights (an ONNX Runtime backbone)."""
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def bf16_is_fast(dev: torch.device | None = None) -> bool:
    """True where bf16 runs on native units: CUDA with bf16, or a CPU with AMX tiles or AVX512-BF16."""
    dev = dev or device()
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    try:
        return bool(cpu._is_amx_tile_supported() or cpu._is_avx512_bf16_supported())  # type: ignore[union-attr]
    except AttributeError:  # older torch without the probes: be conservative
        return False


MIN_BF16_HIDDEN_SIZE = 256
"""Below this width autocast's casts cost more than the bf16 matmuls save (measured: a 32-wide test BERT ran
~12x slower under bf16 autocast on CPU, while 384-wide MiniLM ran ~3x faster)."""


def resolve_precision(choice: str, dev: torch.device | None = None, hidden_size: int | None = None) -> str:
    """'auto' -> 'bf16' where fast (and the model is wide enough to gain), else 'fp32'. An explicit
    choice is honoured."""
    if choice == "auto":
        if hidden_size is not None and hidden_size < MIN_BF16_HIDDEN_SIZE:
            return "fp32"
        return "bf16" if bf16_is_fast(dev) else "fp32"
    return choice


def autocast(precision: str, dev: torch.device | None = None) -> AbstractContextManager[object]:
    dev = dev or device()
    if precision == "bf16":
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return nullcontext()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


_thread_limit: int | None = None


def limit_threads(threads: int) -> None:
    """Cap this process's intra-op threads below its cores (a serving worker of N takes cores / N, so N
    workers use the cores once); set by the process before it loads models, never at import."""
    global _thread_limit
    _thread_limit = max(1, threads)
    torch.set_num_threads(_thread_limit)


def thread_budget() -> int | None:
    """The threads a scheduler gave this process through ``OMP_NUM_THREADS`` (Ray sets it to an actor's
    ``num_cpus``: a Ray Serve replica of 1 CPU on a 16-core node gets 1, not 16); None when unset or not one
    positive integer (OpenMP's nested form "4,2" included)."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def training_threads(num_threads: int | None, local_processes: int = 1) -> int:
    """Threads one training process uses: ``num_threads`` when set, else the ``OMP_NUM_THREADS`` budget its
    launcher gave it (torchrun gives each of several processes 1; Ray an actor's CPUs), else its share of the
    cores among ``local_processes`` processes on this machine; never more than the cores."""
    cores = available_cores()
    return num_threads or min(thread_budget() or max(1, cores // local_processes), cores)


def configure_threads(num_threads: int | None) -> int:
    """Use every core we are allowed (not more: oversubscription hurts small machines): ``num_threads`` when
    set, else the process's ``limit_threads`` share, else the ``OMP_NUM_THREADS`` budget (as torch itself
    does), else every core of our affinity mask."""
    threads = num_threads or _thread_limit or min(thread_budget() or available_cores(), available_cores())
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads

"""torch.distributed set-up for torchrun (single or multi node); a plain `python train.py` is world size 1."""
import logging
import os

import torch
import torch.distributed as dist

from utils.errors import ConfigError


def init_distributed(device_arg: str):
    """-> (rank, world_size, local_rank, device). Reads torchrun's RANK/WORLD_SIZE/LOCAL_RANK."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return 0, 1, 0, resolve_device(device_arg)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg)
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, local_rank, device


def resolve_device(device_arg: str) -> torch.device:
    """`--device` (None/"auto": cuda when available) -> torch.device. On CUDA it also turns on cuDNN's autotuner:
    SSD's input shapes are fixed, so each convolution's fastest algorithm is picked once (GPU results are then
    not bit-reproducible run to run; CPU runs are unaffected)."""
    name = ("cuda" if torch.cuda.is_available() else "cpu") if device_arg in (None, "auto") else device_arg
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device_arg}: unknown device; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device_arg}: no CUDA device is available here (use --device cpu)")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"--device {device_arg}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return device


def cleanup():
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def describe_device(device: torch.device) -> str:
    """'cuda:0 (NVIDIA H100 80GB HBM3)' or 'cpu (2 cores)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({usable_cores()} cores, no GPU)" if not torch.cuda.is_available() else f"cpu ({usable_cores()} cores)"


def cap_workers(workers: int, processes: int = 1) -> int:
    """`--workers` capped to the cores this process may use (more only spin against each other), with a line."""
    cores = usable_cores(processes)
    if workers > cores:
        logging.getLogger("ssd").info("--workers %d capped to %d (the CPU cores this process can use)", workers,
                                      cores)
    return min(workers, cores)


def usable_cores(processes: int = 1) -> int:
    """CPU cores this process may use (its affinity mask), shared among `processes` on the machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, processes))

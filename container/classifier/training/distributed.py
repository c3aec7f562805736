"""Several GPUs, several hosts: torch DDP, launched with torchrun from inside the job.

SageMaker starts one process per host (`SM_HOSTS`, `SM_CURRENT_HOST`). When the job has more than one
GPU or host, that process re-runs the same program under `torch.distributed.run` with one worker per GPU;
the first host is the rendezvous. `TRAINING_PROCESSES_PER_HOST` overrides the worker count (e.g. CPU
workers with the gloo backend, for testing DDP on a machine without GPUs).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

MASTER_PORT = "29500"


@dataclass
class World:
    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _hosts() -> tuple[list[str], str]:
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]")) or ["localhost"]
    return sorted(hosts), os.environ.get("SM_CURRENT_HOST", hosts[0])


def processes_per_host() -> int:
    override = os.environ.get("TRAINING_PROCESSES_PER_HOST")
    if override:
        return int(override)
    return max(1, torch.cuda.device_count())


def needs_launch() -> bool:
    """True in the job's first process when DDP workers must be started."""
    if "LOCAL_RANK" in os.environ:  # already a torchrun worker
        return False
    hosts, _ = _hosts()
    return processes_per_host() * len(hosts) > 1


def launch(argv: list[str]) -> int:
    """Re-run this program under torchrun; returns its exit code."""
    from torch.distributed import run as torchrun

    hosts, current = _hosts()
    args = [
        f"--nproc_per_node={processes_per_host()}",
        f"--nnodes={len(hosts)}",
        f"--node_rank={hosts.index(current)}",
        f"--master_addr={hosts[0]}",
        f"--master_port={os.environ.get('MASTER_PORT', MASTER_PORT)}",
        sys.argv[0], *argv,
    ]
    try:
        torchrun.main(args)
        return 0
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception:  # torchrun raises ChildFailedError; the worker already wrote the failure file
        return 1


def init() -> World:
    if "LOCAL_RANK" not in os.environ:
        return World()
    local_rank = int(os.environ["LOCAL_RANK"])
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend)
    return World(dist.get_rank(), local_rank, dist.get_world_size())


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def broadcast_flag(world: World, flag: bool, device) -> bool:
    """The main process's decision (e.g. stop training), shared with every worker."""
    if not world.distributed:
        return flag
    tensor = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, world: World, device) -> torch.nn.Module:
    """The module that trains, under DDP when the job has several processes (gradients averaged)."""
    if not world.distributed:
        return module
    return torch.nn.parallel.DistributedDataParallel(
        module, device_ids=[world.local_rank] if torch.device(device).type == "cuda" else None)


def sum_over_workers(world: World, values: list[float], device) -> list[float]:
    """Each value summed over the job's processes (a value of this process alone when there is one)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()

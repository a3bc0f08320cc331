"""Workers on a Ray cluster (`--ray ADDRESS` or `auto`): one actor per GPU, or per
`--cores-per-worker` cores on a cluster without GPUs, each holding the in-process engine
(the models load once per actor). Inputs and outputs must be on storage every node sees.

Ray is an optional extra (`medsam-agent-slicer[cluster]`): this module is imported only
when `--ray` is given. An actor is never restarted by Ray and its calls never retried by
Ray: the scheduler sees the loss, replaces the actor and gives its row to the next free
worker, so each row is run to the end exactly once.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from ...errors import MedSAMAgentError
from .worker import RowJob, RowWorker


@dataclass(frozen=True)
class ActorShape:
    count: int
    num_cpus: float
    num_gpus: float

    def describe(self) -> str:
        each = f"1 GPU and {self.num_cpus:g} cores" if self.num_gpus else f"{self.num_cpus:g} cores"
        return f"{self.count} Ray actors of {each} each"


def connect(address: str) -> None:
    """Join the cluster at `address` ("auto": the one this machine belongs to), unless this
    process is connected already. The actors' output stays in their logs."""
    try:
        import ray
    except ImportError:
        raise MedSAMAgentError("--ray needs Ray: pip install 'medsam-agent-slicer[cluster]'") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise MedSAMAgentError(f"cannot join the Ray cluster at {address}: {' '.join(str(error).split())}") from None


def actor_shape(resources: Mapping[str, float], cores_per_worker: float, workers: int | None) -> ActorShape:
    """One actor per GPU of the cluster (`resources`, as `ray.cluster_resources()` gives
    them), as many as its cores allow at one or more each, else one per `cores_per_worker`
    of its cores; at most `workers` when given."""
    gpus, cores = int(resources.get("GPU", 0)), resources.get("CPU", 0)
    if gpus:
        per_actor = max(1.0, min(cores_per_worker, cores / gpus))
        shape = ActorShape(min(gpus, int(cores // per_actor)), per_actor, 1)
    else:
        shape = ActorShape(int(cores // cores_per_worker), cores_per_worker, 0)
    if shape.count < 1:
        raise MedSAMAgentError(f"the Ray cluster has {cores:g} cores and {gpus} GPUs: not enough for one worker of {cores_per_worker:g} cores")
    return ActorShape(min(shape.count, workers), shape.num_cpus, shape.num_gpus) if workers else shape


class RayWorker:
    """One actor holding a `RowWorker`."""

    def __init__(self, options: argparse.Namespace, uses_agent: bool, shape: ActorShape):
        import ray

        actor_class = ray.remote(RowWorker).options(num_cpus=shape.num_cpus, num_gpus=shape.num_gpus, max_restarts=0, max_task_retries=0)
        self.actor = actor_class.remote(options, uses_agent)

    def submit(self, job: RowJob) -> Future:
        return self.actor.run.remote(job).future()

    def close(self) -> None:
        import ray

        ray.kill(self.actor, no_restart=True)

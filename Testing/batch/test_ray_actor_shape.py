"""How many Ray actors a batch starts, and what each asks of the cluster, from the
cluster's resources as Ray reports them (no cluster needed: GPUs cannot be had here)."""

from __future__ import annotations

import pytest

from MedSAMAgentLib.cli.cohort.ray_workers import ActorShape, actor_shape
from MedSAMAgentLib.errors import MedSAMAgentError


def test_one_actor_per_gpu_with_its_share_of_the_cores():
    assert actor_shape({"CPU": 32.0, "GPU": 4.0}, 4, None) == ActorShape(4, 4, 1)
    assert actor_shape({"CPU": 8.0, "GPU": 4.0}, 4, None) == ActorShape(4, 2, 1)  # fewer cores than asked: each its share
    assert actor_shape({"CPU": 32.0, "GPU": 4.0}, 4, 2) == ActorShape(2, 4, 1)  # --workers caps them
    assert actor_shape({"CPU": 32.0, "GPU": 4.0}, 4, None).describe() == "4 Ray actors of 1 GPU and 4 cores each"


def test_more_gpus_than_cores_starts_only_the_actors_that_can_be_placed():
    # Each actor needs a core: four GPUs on two cores give two actors, not four that never start.
    assert actor_shape({"CPU": 2.0, "GPU": 4.0}, 4, None) == ActorShape(2, 1, 1)


def test_without_gpus_one_actor_per_cores_per_worker():
    assert actor_shape({"CPU": 16.0}, 4, None) == ActorShape(4, 4, 0)
    assert actor_shape({"CPU": 2.0}, 1, None).describe() == "2 Ray actors of 1 cores each"
    with pytest.raises(MedSAMAgentError, match="has 2 cores and 0 GPUs: not enough for one worker of 4 cores"):
        actor_shape({"CPU": 2.0}, 4, None)

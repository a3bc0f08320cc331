"""The batch tests' cohort (`Testing.fixtures.cohort`), with `segment`'s outputs for it,
made once per session; and a local Ray cluster of two cores, started and stopped here."""

from __future__ import annotations

import pytest

from Testing.fixtures.cohort import Cohort, build_cohort


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Cohort:
    return build_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A Ray cluster on this machine with two cores (two actors of one core each); the
    batch joins it as the process's cluster (`--ray auto`)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()

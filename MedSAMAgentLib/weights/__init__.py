"""The weights the models need: what they are (`catalog`), where they are found on this
machine without touching the network (`locate`), and how to fetch them on a machine that
has the hub, for copying to one that has not (`fetch`). Imports no model code."""

from .catalog import CATALOG, WeightsSpec, spec_named
from .locate import (
    MODELS_FOLDER_ENV,
    WeightsMissing,
    hub_file,
    hub_snapshot,
    hub_state,
    model_folders,
)

__all__ = [
    "CATALOG", "MODELS_FOLDER_ENV", "WeightsMissing", "WeightsSpec", "hub_file", "hub_snapshot", "hub_state", "model_folders",
    "spec_named",
]

"""The engine interface (`interface`), its in-process implementation (`local`) and the
agent's record (`records`). The remote implementation lives in `MedSAMAgentLib.remote`.
Importing this package loads no model code."""

from .interface import Engine, SegmentationOutcome, SegmentationRequest
from .records import AgentRecord, TurnRecord

__all__ = ["Engine", "SegmentationOutcome", "SegmentationRequest", "AgentRecord", "TurnRecord"]

"""The engine interface (`interface`) and its in-process implementation (`local`); the
agent's record (`AgentRecord`, from `agent.records`) is re-exported. The remote
implementation lives in `MedSAMAgentLib.remote`. Importing this package loads no model
code."""

from ..agent.records import AgentRecord, TurnRecord
from .interface import Engine, SegmentationOutcome, SegmentationRequest

__all__ = ["Engine", "SegmentationOutcome", "SegmentationRequest", "AgentRecord", "TurnRecord"]

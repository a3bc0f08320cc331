"""Errors the user can act on.

Every failure caused by the user's input or environment is raised as a subclass of
`MedSAMAgentError` with a one-line message that says what is wrong and what to do; the
command line prints that line and exits non-zero, the Slicer module shows it in a dialog.
"""


class MedSAMAgentError(Exception):
    """Base class: the message is shown to the user as is. When the agent had run before the
    failure, `records` holds its record so far (`agent.records.AgentRecord`s), so that a
    failed run can be inspected like a successful one."""

    records: list = []


class InputImageError(MedSAMAgentError):
    """The input volume is missing, unreadable, or not a usable 3D image."""


class PromptError(MedSAMAgentError):
    """A slice index, box or point does not fit the volume."""


class CheckpointError(MedSAMAgentError):
    """Model weights are missing, corrupt, or do not match the architecture."""


class OutputError(MedSAMAgentError):
    """The output path cannot be written (exists without --overwrite, is the input, ...)."""


class AgentError(MedSAMAgentError):
    """The agent policy (model, endpoint) failed in a way the user must fix."""


class ServerError(MedSAMAgentError):
    """A MedSAM-Agent server is unreachable, refused the key, or failed."""


class Cancelled(MedSAMAgentError):
    """The user cancelled the run; nothing was written."""

    def __init__(self, message: str = "cancelled by the user; nothing was changed"):
        super().__init__(message)

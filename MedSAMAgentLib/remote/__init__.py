"""The thin client: `RemoteEngine` runs jobs on a MedSAM-Agent server. Importing it needs
only numpy, requests and zstandard (no torch, transformers or sam2)."""

from .client import RemoteEngine

SERVER_KEY_ENV = "MEDSAM_AGENT_SERVER_KEY"
"""Where every client (the command line, the browser workstation) reads the server's key."""

__all__ = ["SERVER_KEY_ENV", "RemoteEngine"]

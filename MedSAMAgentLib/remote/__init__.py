"""The thin client: `RemoteEngine` runs jobs on a MedSAM-Agent server. Importing it needs
only numpy, requests and zstandard (no torch, transformers or sam2)."""

from .client import RemoteEngine

__all__ = ["RemoteEngine"]

"""This computer's engine, to compare the server's results with."""

from __future__ import annotations

import pytest


@pytest.fixture
def local_engine(litemedsam, monkeypatch):
    """This computer's engine, with the session's LiteMedSAM (the server loads its own)."""
    from MedSAMAgentLib import segmenters
    from MedSAMAgentLib.engine.local import LocalEngine

    monkeypatch.setattr(segmenters, "create_segmenter", lambda *args, **kwargs: litemedsam)
    return LocalEngine("litemedsam", device="cpu")

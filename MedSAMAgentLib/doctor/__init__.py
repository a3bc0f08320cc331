"""`medsam-agent doctor`: one screen that says why a run is slow or failing on this machine
(versions, processor, runtime, GPU, weights, caches) and, given a server, whether it answers,
speaks this API version and accepts the key. The Slicer module shows the same text."""

from .findings import Finding, Section, render
from .machine import machine_sections
from .server_check import server_section

__all__ = ["Finding", "Section", "diagnose", "machine_sections", "render", "server_section"]


def diagnose(server: str | None = None, api_key: str | None = None, key_source: str = "the API key") -> list[Section]:
    sections = machine_sections()
    if server:
        sections.append(server_section(server, api_key, key_source))
    return sections

"""Whether an address to listen on reaches this computer only: the rule by which the
server and the browser workstation refuse to listen on a network without keys."""

from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False

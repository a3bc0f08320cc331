"""API keys: a file of `name sha256:HEX` lines, one per user or workstation.

The file holds only hashes, so reading it gives no key away. A key is 32 random bytes
(URL-safe base64), so a plain SHA-256 is enough: there is nothing to brute-force. Checking
compares the presented key's hash against every stored hash in constant time, and never
stops early, so timing tells nothing about which key, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ..errors import MedSAMAgentError

KEY_BYTES = 32
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_LINE = re.compile(r"^(\S+)\s+sha256:([0-9a-f]{64})$")


class KeyFileError(MedSAMAgentError):
    """The API key file is missing, unreadable or malformed."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """The names and key hashes the server accepts."""

    entries: tuple[tuple[str, str], ...]

    @classmethod
    def load(cls, path: Path, allow_empty: bool = False) -> KeyRing:
        """`allow_empty`: a file without keys means nobody gets in (when keys are revoked
        while the server runs); at start it is refused as a mistake."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise KeyFileError(f"cannot read the API key file {path}: {error.strerror or error}") from None
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if not match:
                raise KeyFileError(f"{path} line {number} is not 'NAME sha256:HEX' (make keys with medsam-agent add-key)")
            entries.append((match.group(1), match.group(2)))
        if not entries and not allow_empty:
            raise KeyFileError(f"{path} holds no keys; add one with: medsam-agent add-key {path} NAME")
        return cls(tuple(entries))

    def name_of(self, key: str | None) -> str | None:
        """The name the key belongs to, or None."""
        if not key:
            return None
        presented = key_hash(key).encode()
        found = None
        for name, stored in self.entries:
            if hmac.compare_digest(presented, stored.encode()) and found is None:
                found = name
        return found


class KeyFile:
    """The key file as the server reads it: loaded again whenever it changes on disk, so
    that a key added with add-key works at once and a line removed revokes its key at once,
    without a restart. A file that became unreadable or malformed keeps the last good keys
    (and says so in the log) rather than locking everybody out or letting everybody in."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp = self._read_stamp()
        self.ring = KeyRing.load(self.path)

    def _read_stamp(self) -> tuple[int, int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None
        return status.st_mtime_ns, status.st_size, status.st_ino

    def name_of(self, key: str | None) -> str | None:
        stamp = self._read_stamp()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._stamp = stamp
                    try:
                        self.ring = KeyRing.load(self.path, allow_empty=True)
                        logging.getLogger("medsam_agent.server").info("API keys reloaded: %d keys", len(self.ring.entries))
                    except KeyFileError as error:
                        logging.getLogger("medsam_agent.server").error("%s; keeping the keys loaded before", error)
        return self.ring.name_of(key)


def add_key(path: Path, name: str) -> str:
    """Append a new key for `name` to the key file (created readable by its owner only)
    and return the key, which is stored nowhere else."""
    path = Path(path)
    if not _NAME.match(name):
        raise KeyFileError(f"key name {name!r}: use letters, digits and . _ @ - (up to 64), starting with a letter or digit")
    if path.exists():
        if any(existing == name for existing, _ in KeyRing.load(path).entries):
            raise KeyFileError(f"{path} already has a key named {name!r}; choose another name")
    elif not path.parent.is_dir():
        raise KeyFileError(f"folder {path.parent} does not exist")
    key = secrets.token_urlsafe(KEY_BYTES)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        handle.write(f"{name} sha256:{key_hash(key)}\n")
    return key

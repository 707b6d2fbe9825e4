"""The console's users: an htpasswd file of bcrypt hashes, read again whenever it changes, and a
password checked against it in the same time whether the name is known or not."""

from __future__ import annotations

import functools
import logging
import os
import re
import threading

import bcrypt

log = logging.getLogger("afterparty.web")

# bcrypt reads no further: a longer password cannot be checked, so it is refused as such.
MAX_PASSWORD_BYTES = 72
# The cost of the stand-in hash when the file holds no bcrypt hash to take it from.
DEFAULT_COST = 12
# What the bcrypt library checks: $2a$, $2b$ or $2y$, a cost from 04 to 31, salt and hash.
_BCRYPT = re.compile(rb"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


def bcrypt_cost(hashed: bytes) -> int | None:
    """The cost of a bcrypt hash (``$2y$12$...``: 12); None when it is no bcrypt hash."""
    found = _BCRYPT.fullmatch(hashed)
    return int(found.group(1)) if found else None


def read_htpasswd(path: str) -> dict[str, bytes]:
    """Each ``name:hash`` line of the file (comments and blank lines skipped)."""
    hashes: dict[str, bytes] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            name, _, hashed = line.strip().partition(":")
            if name and hashed and not name.startswith("#"):
                hashes[name] = hashed.split(":", 1)[0].encode()
    return hashes


@functools.cache
def _stand_in_hash(cost: int) -> bytes:
    """Checked when the name is unknown, so that a wrong name takes as long as a wrong password."""
    return bcrypt.hashpw(b"afterparty", bcrypt.gensalt(rounds=cost))


class Htpasswd:
    """An htpasswd file of ``name:bcrypt-hash`` lines, read again whenever it changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._hashes: dict[str, bytes] = {}
        self._cost = DEFAULT_COST
        self._guard = threading.Lock()

    def hashes(self) -> dict[str, bytes]:
        with self._guard:
            try:
                stat = os.stat(self.path)
            except OSError:
                return {}
            stamp = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if self._stamp != stamp:
                self._hashes = read_htpasswd(self.path)
                self._cost = max((cost for cost in map(bcrypt_cost, self._hashes.values()) if cost),
                                 default=DEFAULT_COST)
                self._stamp = stamp
            return self._hashes

    def check(self, name: str, password: str) -> bool:
        """Whether the password is the user's: an unknown name, or one whose entry is no bcrypt
        hash, is checked against a stand-in of the file's highest cost, and refused."""
        hashed = self.hashes().get(name)
        if hashed is not None and bcrypt_cost(hashed) is None:  # htpasswd's MD5 or SHA1
            log.warning("htpasswd %s: the entry of %r is not a bcrypt hash (use htpasswd -B)",
                        self.path, name)
            hashed = None
        matches = bcrypt.checkpw(password.encode(), hashed or _stand_in_hash(self._cost))
        return matches and hashed is not None

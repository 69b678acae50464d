"""Password hashing: argon2 for new hashes, bcrypt (the original's) still verified and upgraded."""

from __future__ import annotations

import logging
import secrets

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

log = logging.getLogger(__name__)

# OWASP's argon2id configuration m=19 MiB, t=2, p=1 (Password Storage Cheat Sheet): ~23 ms of one core per
# hash here, where argon2-cffi's defaults (m=64 MiB, t=3, p=4) cost ~210 ms of CPU and 64 MiB per login in
# flight, which capped logins at ~7/s on two cores (bench/README.md). Stored hashes with other parameters
# are rehashed with these at their next successful login.
ARGON2_MEMORY_KIB, ARGON2_TIME_COST, ARGON2_PARALLELISM = 19 * 1024, 2, 1


class Passwords:
    """Verifies passwords so that every login costs exactly one hash verification.

    A login for an unknown email (or a stored hash we cannot use) is verified against a dummy hash
    made by the current hasher, so it takes as long as a login for a known email: no user
    enumeration by timing.
    """

    def __init__(self, hasher: PasswordHash | None = None) -> None:
        # The first hasher makes new hashes; the others are only recognised and verified.
        self._hasher = hasher or PasswordHash(
            (
                Argon2Hasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM),
                BcryptHasher(),
            )
        )
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """A new hash of password with the current hasher (argon2id)."""
        return self._hasher.hash(password)

    def verify_and_update(self, password: str, stored_hash: str | None) -> tuple[bool, str | None]:
        """(matches, new hash if the stored one should be replaced); CPU-bound, call it in a thread."""
        secret = _utf8(password)
        if stored_hash is None:
            self._burn(secret)
            return False, None
        try:
            return self._hasher.verify_and_update(secret, stored_hash)
        except UnknownHashError:
            log.warning("stored password hash has an unknown format")
        except ValueError:
            # bcrypt refuses passwords over 72 bytes instead of silently truncating them.
            pass
        self._burn(secret)
        return False, None

    def _burn(self, secret: bytes) -> None:
        """Spend one verification on the dummy hash (the cost of a real check)."""
        self._hasher.verify(secret, self._dummy_hash)


def _utf8(password: str) -> bytes:
    """The password's UTF-8 bytes; a lone surrogate (JSON `\\ud800`) is kept as bytes no real password has."""
    return password.encode("utf-8", "surrogatepass")

"""Password hashes of accounts and operators: scrypt, stored as ``scrypt$n$r$p$salt$hash`` (hex).

Only hashes are kept (the config file, the account store). ``verify`` compares in constant
time. Create an operator's with ``chatd --hash-password``.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from chatd.protocol.framing import WIRE

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 5
"""OWASP's scrypt minimum in its 16 MiB form (N=2^14, r=8, p=5, equivalent to N=2^17, p=1):
about 0.2 s of CPU per hash here. Python's hashlib keeps OpenSSL's 32 MiB limit, which the
larger-N forms pass. Hashes made with other parameters (p=1 before) still verify: each hash
names its own."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(errors=WIRE), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the stored hash; False for any malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(
            password.encode(errors=WIRE), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)

"""Client API keys: kept only as SHA-256 hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import os

from shipit.errors import UserError
from shipit.serve.config import Auth


def hash_key(key: str) -> str:
    """`sha256:<hex>` of a key, the form the config stores."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def load_hashes(auth: Auth, source: str = "config") -> list[bytes]:
    """Digests of every accepted key: the config's hashes plus the keys in $`auth.keys_env` (hashed at once)."""
    plain = [k.strip() for k in os.environ.get(auth.keys_env, "").split(",") if k.strip()]
    digests = [bytes.fromhex(h.split(":", 1)[1]) for h in auth.key_hashes]
    digests += [hashlib.sha256(k.encode()).digest() for k in plain]
    if auth.required and not digests:
        raise UserError(f"{source}: field 'auth': no API keys; set ${auth.keys_env}=KEY1,KEY2 or add "
                        f"auth.key_hashes (`shipit ab hash-key KEY`), or set auth.required: false for local tests")
    return digests


def authorized(header: str | None, digests: list[bytes]) -> bool:
    """Whether `Authorization: Bearer KEY` carries an accepted key; every digest is compared, in constant time."""
    if not header or not header.startswith("Bearer "):
        return False
    got = hashlib.sha256(header[7:].strip().encode()).digest()
    ok = False
    for d in digests:
        ok |= hmac.compare_digest(got, d)
    return ok

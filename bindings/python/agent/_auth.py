"""Authentication of TCP clients by a shared secret (docs/client-protocol.md, "Authentication").

A daemon whose TCP listener requires it answers hello with a challenge (a fresh random
nonce); the client answers with a name of the daemon's secrets file and

    HMAC-SHA256(secret, LABEL | 0x01 | nonce | u32 len(hello body) | hello body | str8 name)

The secret never travels. Credentials come from ``connect(..., user=, secret=)`` or from the
environment: ``$AGENT_SECRET_FILE`` (lines ``NAME SECRET``, the daemon's format, mode 0600) and
``$AGENT_USER`` (which line; not needed when the file has one).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
import struct
from typing import Dict, Optional, Tuple, Union

from .errors import AuthFailed, ProtocolError

LABEL = b"libagent client auth v1"
CLIENT_TO_DAEMON = 1
METHOD_SECRET = 1
NONCE_BYTES = 32
MIN_SECRET_BYTES, MAX_SECRET_BYTES = 16, 1024
AUTH, CHALLENGE = 0x07, 0x87
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")


def valid_name(name: bytes) -> bool:
    return 0 < len(name) <= 64 and all(c in _NAME_CHARS for c in name)


def parse_secrets(text: bytes, path: str = "secrets") -> Dict[bytes, bytes]:
    """A secrets file's entries; ValueError naming the line of the first problem."""
    out: Dict[bytes, bytes] = {}
    for number, line in enumerate(text.split(b"\n"), 1):
        fields = line.split()
        if not fields or fields[0].startswith(b"#"):
            continue
        if len(fields) != 2:
            raise ValueError("%s:%d: expected 'NAME SECRET'" % (path, number))
        name, secret = fields
        if not valid_name(name):
            raise ValueError("%s:%d: not a valid name" % (path, number))
        if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES or \
                any(c <= 0x20 or c >= 0x7f for c in secret):
            raise ValueError("%s:%d: a secret has 16..1024 printable ASCII bytes" % (path, number))
        if name in out:
            raise ValueError("%s:%d: name listed twice" % (path, number))
        out[name] = secret
    return out


def load_secrets_file(path: str) -> Dict[bytes, bytes]:
    """Reads a secrets file that group and others may not read or write."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError("%s: not a regular file" % path)
    if st.st_mode & 0o077:
        raise ValueError("%s: mode %04o lets group or others at the secrets: chmod 600 %s"
                         % (path, stat.S_IMODE(st.st_mode), path))
    with open(path, "rb") as f:
        return parse_secrets(f.read(1 << 20), path)


def _as_bytes(x: Union[str, bytes]) -> bytes:
    return x.encode("ascii") if isinstance(x, str) else bytes(x)


def credentials(user: Optional[Union[str, bytes]],
                secret: Optional[Union[str, bytes]]) -> Tuple[bytes, bytes]:
    """The name and secret to answer a challenge with: as given, else from the environment."""
    if user is not None and secret is not None:
        return _as_bytes(user), _as_bytes(secret)
    path = os.environ.get("AGENT_SECRET_FILE")
    if not path:
        raise AuthFailed("the daemon asks TCP clients to authenticate: pass user= and secret=, "
                         "or set AGENT_SECRET_FILE (and AGENT_USER)")
    try:
        entries = load_secrets_file(path)
    except (OSError, ValueError) as e:
        raise AuthFailed("AGENT_SECRET_FILE: %s" % e) from None
    wanted = user if user is not None else os.environ.get("AGENT_USER")
    if wanted:
        name = _as_bytes(wanted)
        if name not in entries:
            raise AuthFailed("AGENT_SECRET_FILE %s has no entry for %r" % (path, wanted))
        return name, entries[name]
    if len(entries) != 1:
        raise AuthFailed("AGENT_SECRET_FILE %s has %d entries: set AGENT_USER to choose one"
                         % (path, len(entries)))
    return next(iter(entries.items()))


def response(secret: bytes, nonce: bytes, hello_body: bytes, name: bytes) -> bytes:
    transcript = (LABEL + bytes((CLIENT_TO_DAEMON,)) + nonce +
                  struct.pack("<I", len(hello_body)) + hello_body + bytes((len(name),)) + name)
    return hmac.new(secret, transcript, hashlib.sha256).digest()


def decode_challenge(buf, start: int, end: int) -> bytes:
    body = bytes(buf[start:end])
    if len(body) != 2 + NONCE_BYTES or body[0] != METHOD_SECRET or body[1] != NONCE_BYTES:
        raise ProtocolError("the daemon's challenge does not decode")
    return body[2:]


def encode_auth(name: bytes, mac: bytes) -> bytes:
    body = bytes((METHOD_SECRET, len(name))) + name + bytes((len(mac),)) + mac
    return struct.pack("<IB", 1 + len(body), AUTH) + body


def answer(buf, start: int, end: int, hello_body: bytes,
           user: Optional[Union[str, bytes]], secret: Optional[Union[str, bytes]]) -> bytes:
    """The auth frame that answers the challenge in buf[start:end]."""
    nonce = decode_challenge(buf, start, end)
    name, key = credentials(user, secret)
    return encode_auth(name, response(key, nonce, hello_body, name))

"""Ed25519 keys, addresses and key files.

Every account and validator in Phalanx is an Ed25519 key pair (pynacl / libsodium). An
address is the first 20 bytes of SHA-256 of the 32-byte public key, shown as ``0x`` + 40
lowercase hex digits.

Invariants:

* :meth:`PublicKey.verify` and :func:`verify_signature` never raise for a bad signature, a
  bad length or a key that is not a curve point: they return ``False``.
* A key file is written atomically with mode ``0600`` from the moment it exists (temporary
  file created ``0600`` in the same directory, fsynced, then renamed), and loading refuses a
  file whose permissions are looser than ``0600``.
* Nothing is cached globally: verification keeps no per-key state between calls.

Called by ``chain.tx`` (signing and verifying transactions), ``chain.genesis`` (validator
keys), the node (validator key file) and the CLI (``keys`` commands).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import nacl.bindings
import nacl.exceptions
import nacl.signing

from chain.errors import ChainError, KeyFileError

__all__ = [
    "ADDRESS_BYTES",
    "PUBLIC_KEY_BYTES",
    "SEED_BYTES",
    "SIGNATURE_BYTES",
    "PrivateKey",
    "PublicKey",
    "address_of",
    "format_address",
    "hex_digits_to_bytes",
    "load_key_file",
    "parse_address",
    "save_key_file",
    "verify_signature",
]

ADDRESS_BYTES = 20
PUBLIC_KEY_BYTES = 32
SEED_BYTES = 32
SIGNATURE_BYTES = 64

_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hex_digits_to_bytes(text: str) -> bytes | None:
    """Decode ``text`` made only of hex digits (either case) into bytes; None otherwise.

    Stricter than ``bytes.fromhex``, which skips whitespace: 64 characters with two spaces
    would otherwise decode to 31 bytes and pass a check on the text's length.
    """
    if len(text) % 2 or not _HEX_DIGITS.issuperset(text):
        return None
    return bytes.fromhex(text)


#: The ``type`` field of a key file.
KEY_FILE_TYPE = "ed25519"
#: A key file larger than this is rejected before parsing.
KEY_FILE_BYTES_MAX = 4096

_crypto_sign_open = nacl.bindings.crypto_sign_open
_BadSignature = nacl.exceptions.BadSignatureError


def address_of(public_key_raw: bytes) -> bytes:
    """Return the 20-byte address of a 32-byte Ed25519 public key.

    Args:
        public_key_raw: the raw public key.

    Returns:
        The first 20 bytes of SHA-256(public key).

    Raises:
        ChainError: the key is not 32 bytes.
    """
    if len(public_key_raw) != PUBLIC_KEY_BYTES:
        raise ChainError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(public_key_raw)}")
    return hashlib.sha256(public_key_raw).digest()[:ADDRESS_BYTES]


def verify_signature(public_key_raw: bytes, data: bytes, signature: bytes) -> bool:
    """Check an Ed25519 detached signature; the fast path used for every transaction.

    Args:
        public_key_raw: the 32-byte public key.
        data: the signed bytes.
        signature: the 64-byte detached signature.

    Returns:
        True when the signature is valid; False for any bad signature, length or key.
    """
    if len(public_key_raw) != PUBLIC_KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        return False
    try:
        _crypto_sign_open(bytes(signature) + bytes(data), bytes(public_key_raw))
    except (_BadSignature, ValueError, TypeError):
        return False
    return True


def format_address(addr: bytes) -> str:
    """Return ``0x`` followed by the address in lowercase hex.

    Raises:
        ChainError: the address is not 20 bytes.
    """
    if len(addr) != ADDRESS_BYTES:
        raise ChainError(f"address must be {ADDRESS_BYTES} bytes, got {len(addr)}")
    return "0x" + addr.hex()


def parse_address(text: str) -> bytes:
    """Parse ``0x`` + 40 hex digits (either case) into a 20-byte address.

    Raises:
        ChainError: with the reason (not a string, missing ``0x``, wrong length, not hex).
    """
    if not isinstance(text, str):
        raise ChainError(f"address must be a string, got {type(text).__name__}")
    if not text.startswith(("0x", "0X")):
        raise ChainError(f"address {text!r} must start with 0x")
    digits = text[2:]
    if len(digits) != 2 * ADDRESS_BYTES:
        raise ChainError(
            f"address {text!r} must have {2 * ADDRESS_BYTES} hex digits after 0x, got {len(digits)}"
        )
    addr = hex_digits_to_bytes(digits)
    if addr is None:
        raise ChainError(f"address {text!r} is not hexadecimal")
    return addr


class PublicKey:
    """An Ed25519 public key (32 bytes)."""

    __slots__ = ("_address", "_raw")

    def __init__(self, raw: bytes) -> None:
        if not isinstance(raw, bytes | bytearray) or len(raw) != PUBLIC_KEY_BYTES:
            size = len(raw) if isinstance(raw, bytes | bytearray) else type(raw).__name__
            raise ChainError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {size}")
        self._raw = bytes(raw)
        self._address: bytes | None = None

    @property
    def raw(self) -> bytes:
        """The 32 raw bytes."""
        return self._raw

    @property
    def address(self) -> bytes:
        """The 20-byte address of this key."""
        if self._address is None:
            self._address = address_of(self._raw)
        return self._address

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Return True if ``signature`` is this key's signature of ``data``; never raises."""
        return verify_signature(self._raw, data, signature)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._raw == self._raw

    def __hash__(self) -> int:
        return hash(self._raw)

    def __repr__(self) -> str:
        return f"PublicKey({self._raw.hex()})"


class PrivateKey:
    """An Ed25519 signing key, created from a 32-byte seed."""

    __slots__ = ("_public", "_seed", "_signing")

    def __init__(self, signing_key: nacl.signing.SigningKey) -> None:
        self._signing = signing_key
        self._seed = bytes(signing_key)
        self._public = PublicKey(bytes(signing_key.verify_key))

    @classmethod
    def generate(cls) -> PrivateKey:
        """Create a fresh key from the operating system's random source."""
        return cls(nacl.signing.SigningKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> PrivateKey:
        """Create the key determined by a 32-byte seed.

        Raises:
            ChainError: the seed is not 32 bytes.
        """
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
            raise ChainError(f"seed must be {SEED_BYTES} bytes")
        return cls(nacl.signing.SigningKey(bytes(seed)))

    @property
    def seed(self) -> bytes:
        """The 32-byte seed (the secret)."""
        return self._seed

    @property
    def public_key(self) -> PublicKey:
        """The matching public key."""
        return self._public

    @property
    def address(self) -> bytes:
        """The 20-byte address of the public key."""
        return self._public.address

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte detached Ed25519 signature of ``data`` (deterministic)."""
        return bytes(self._signing.sign(bytes(data)).signature)

    def __repr__(self) -> str:
        # Never print the seed.
        return f"PrivateKey(address={format_address(self.address)})"


def save_key_file(path: str | os.PathLike[str], key: PrivateKey) -> None:
    """Write ``key`` as JSON to ``path`` atomically, readable by the owner only (0600).

    The file holds ``{"type": "ed25519", "seed": hex, "public_key": hex, "address": "0x.."}``.
    A temporary file is created with mode 0600 in the same directory, written, fsynced and
    renamed over ``path``, so no reader ever sees a partial or world-readable key.

    Raises:
        KeyFileError: the file cannot be written.
    """
    target = Path(path)
    body = (
        json.dumps(
            {
                "type": KEY_FILE_TYPE,
                "seed": key.seed.hex(),
                "public_key": key.public_key.raw.hex(),
                "address": format_address(key.address),
            },
            indent=2,
        ).encode()
        + b"\n"
    )
    tmp: Path | None = None
    try:
        # mkstemp creates the file with mode 0600 (O_EXCL, unique name) in the target's
        # directory, so the rename below is atomic and the key is never readable by others.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise KeyFileError(f"{target}: cannot write key file: {e.strerror or e}") from e
    with contextlib.suppress(OSError):
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load_key_file(path: str | os.PathLike[str]) -> PrivateKey:
    """Read a key file written by :func:`save_key_file`.

    Raises:
        KeyFileError: the file is missing or unreadable, has permissions looser than 0600,
            is not JSON, has the wrong type or fields, or its public key or address does
            not match its seed.
    """
    target = Path(path)
    try:
        fd = os.open(target, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"{target}: key file not found") from None
    except OSError as e:
        raise KeyFileError(f"{target}: cannot open key file: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{target}: not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"{target}: permissions {stat.S_IMODE(st.st_mode):04o} are too open for a "
                f"private key; run: chmod 600 {target}"
            )
        if st.st_size > KEY_FILE_BYTES_MAX:
            raise KeyFileError(f"{target}: {st.st_size} bytes is too large for a key file")
        raw = os.read(fd, KEY_FILE_BYTES_MAX + 1)
    except OSError as e:
        raise KeyFileError(f"{target}: cannot read key file: {e.strerror or e}") from None
    finally:
        os.close(fd)
    try:
        obj: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise KeyFileError(f"{target}: not valid JSON: {e}") from None
    return _key_from_json(target, obj)


def _key_from_json(target: Path, obj: Any) -> PrivateKey:
    if not isinstance(obj, dict):
        raise KeyFileError(f"{target}: expected a JSON object")
    expected = {"type", "seed", "public_key", "address"}
    missing = sorted(expected - obj.keys())
    if missing:
        raise KeyFileError(f"{target}: missing field(s): {', '.join(missing)}")
    extra = sorted(obj.keys() - expected)
    if extra:
        raise KeyFileError(f"{target}: unknown field(s): {', '.join(extra)}")
    if obj["type"] != KEY_FILE_TYPE:
        raise KeyFileError(f"{target}: type must be {KEY_FILE_TYPE!r}, got {obj['type']!r}")
    seed = _hex_field(target, obj, "seed", SEED_BYTES)
    public = _hex_field(target, obj, "public_key", PUBLIC_KEY_BYTES)
    key = PrivateKey.from_seed(seed)
    if key.public_key.raw != public:
        raise KeyFileError(f"{target}: public_key does not match the seed")
    try:
        addr = parse_address(obj["address"])
    except ChainError as e:
        raise KeyFileError(f"{target}: address: {e}") from None
    if addr != key.address:
        raise KeyFileError(f"{target}: address does not match the seed")
    return key


def _hex_field(target: Path, obj: dict[str, Any], name: str, size: int) -> bytes:
    value = obj[name]
    if not isinstance(value, str) or len(value) != 2 * size:
        raise KeyFileError(f"{target}: {name} must be {2 * size} hex characters")
    raw = hex_digits_to_bytes(value)
    if raw is None:
        raise KeyFileError(f"{target}: {name} is not hexadecimal")
    return raw

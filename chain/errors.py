"""The chain package's exception hierarchy.

Every error raised on purpose by ``chain`` derives from :class:`ChainError`, so callers at a
boundary (the API, the CLI, a peer handler) can catch one type and turn it into a clear
message. Bugs in our own code are not ``ChainError``: they are assertions and crash loudly.
"""

from __future__ import annotations


class ChainError(Exception):
    """Base of every deliberate error raised by the chain package."""


class DecodeError(ChainError):
    """Raised when bytes are not the one canonical encoding of the expected type.

    Covers malformed RLP, non-canonical lengths or integers, trailing bytes, fields of the
    wrong length or type, and values outside their declared bounds.
    """


class KeyFileError(ChainError):
    """Raised when a key file is missing, unreadable, corrupt or has unsafe permissions."""


class GenesisError(ChainError):
    """Raised when a genesis file is missing, malformed or fails validation."""

"""Length-prefixed frames: a 4-byte big-endian length, then that many bytes.

Theory of operation
-------------------
:func:`encode_frame` prefixes one body with its length. :class:`FrameDecoder` is a sans-IO
decoder: the driver ``feed``-s whatever bytes the stream produced and pulls complete frames
with :meth:`FrameDecoder.next_frame` (or both at once with :meth:`FrameDecoder.feed_frames`).

Invariants:

* a frame longer than ``frame_bytes_max`` is refused as soon as its 4-byte header is read,
  with :class:`~p2p.errors.FrameTooLarge`; its body is never waited for;
* after an error the decoder stays failed (every later call raises);
* the decoder never holds more than one incomplete frame plus the last chunk fed, provided
  the driver drains frames after every ``feed`` (both drivers in ``p2p.transport`` do).

``frame_bytes_max`` may be changed between frames: the handshake runs with a small limit,
the session that follows with the configured one, over the same decoder (so bytes that
arrived together with the last handshake message are not lost).

Used by ``p2p.transport`` and by tests.
"""

from __future__ import annotations

from p2p.errors import FrameTooLarge

__all__ = ["FRAME_HEADER_BYTES", "FrameDecoder", "encode_frame"]

FRAME_HEADER_BYTES = 4
_LENGTH_LIMIT = (1 << 32) - 1


def encode_frame(body: bytes, frame_bytes_max: int) -> bytes:
    """Return ``body`` prefixed with its 4-byte big-endian length.

    Args:
        body: the frame body.
        frame_bytes_max: the largest body allowed.

    Returns:
        The frame bytes.

    Raises:
        FrameTooLarge: ``body`` is longer than ``frame_bytes_max``.
    """
    n = len(body)
    if n > frame_bytes_max or n > _LENGTH_LIMIT:
        raise FrameTooLarge(f"frame of {n} bytes exceeds the {frame_bytes_max}-byte limit")
    return n.to_bytes(FRAME_HEADER_BYTES, "big") + body


class FrameDecoder:
    """Sans-IO decoder of a stream of length-prefixed frames.

    Args:
        frame_bytes_max: the largest frame body accepted.
    """

    def __init__(self, frame_bytes_max: int) -> None:
        if not 0 <= frame_bytes_max <= _LENGTH_LIMIT:
            raise ValueError(f"frame_bytes_max out of range: {frame_bytes_max}")
        self.frame_bytes_max = frame_bytes_max
        self._buf = bytearray()
        self._pos = 0
        self._failed: FrameTooLarge | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes fed but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes received from the stream.

        Raises:
            FrameTooLarge: the decoder already failed, or the next frame's header is too big.
        """
        if self._failed is not None:
            raise self._failed
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        self._check_header()

    def next_frame(self) -> bytes | None:
        """Return the next complete frame body, or ``None`` if more bytes are needed.

        Raises:
            FrameTooLarge: the next frame announces more than ``frame_bytes_max`` bytes.
        """
        if self._failed is not None:
            raise self._failed
        n = self._check_header()
        if n is None:
            return None
        start = self._pos + FRAME_HEADER_BYTES
        end = start + n
        if end > len(self._buf):
            return None
        body = bytes(self._buf[start:end])
        self._pos = end
        return body

    def feed_frames(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Feed ``data`` and return every frame now complete.

        Raises:
            FrameTooLarge: a frame header announces more than ``frame_bytes_max`` bytes.
        """
        self.feed(data)
        frames: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def _check_header(self) -> int | None:
        pos = self._pos
        if len(self._buf) - pos < FRAME_HEADER_BYTES:
            return None
        n = int.from_bytes(self._buf[pos : pos + FRAME_HEADER_BYTES], "big")
        if n > self.frame_bytes_max:
            self._failed = FrameTooLarge(
                f"frame header announces {n} bytes, limit is {self.frame_bytes_max}"
            )
            self._buf.clear()
            self._pos = 0
            raise self._failed
        return n

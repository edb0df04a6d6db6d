"""The response body, decoded as it arrives and cut at the byte cap: one implementation for
both fetchers.

Both HTTP clients are asked for the raw body (after the transfer coding, before the content
coding) and hand it here chunk by chunk. Decoding ourselves, rather than through each client,
gives one behaviour wherever a page is fetched:

- every decoder is asked for a bounded piece of output at a time (zlib's `max_length`,
  brotli's `output_buffer_limit`, zstd's `max_length`), so a compression bomb is stopped a
  piece after the cap, never expanded whole. urllib3 2.8 with brotli 1.2 expands a small
  brotli body whole when the raw stream ends (11.5 MB held for a 34-byte bomb): measured.
- the same codings are decoded (`SUPPORTED`, and so the same Accept-Encoding is sent), with
  the same aliases, the same stacking ("gzip, br") and the same verdicts: a coding stream
  cut short keeps what it decoded, as browsers and Scrapy do (the transport already says
  whether the HTTP body itself was complete); bytes that are not the coding they claim are a
  decoding error; an unknown coding is passed through as it came.
"""

from __future__ import annotations

import sys
import zlib
from collections.abc import Iterator
from typing import Protocol

try:
    import brotli
except ImportError:  # pragma: no cover - a dependency; without it br is not asked for
    brotli = None

try:
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
except ImportError:  # pragma: no cover - a dependency; without it zstd is not asked for
    zstd = None

# The most decoded bytes asked of a decoder at once. brotli may overshoot the limit it is
# given by up to half of it, so a step is at most about 1.5 times this.
STEP = 64 * 1024


class BodyTooLarge(Exception):
    """The decoded body passed the cap; `decoded` is how many bytes had been decoded."""

    def __init__(self, cap: int, decoded: int) -> None:
        super().__init__(f"body larger than {cap} bytes")
        self.decoded = decoded


class BodyDecodeError(Exception):
    """The bytes are not in the content coding the response declares."""


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...

    def finish(self) -> Iterator[bytes]: ...


class _Zlib:
    """gzip (possibly several members, as RFC 1952 allows) or deflate (zlib-wrapped, as RFC
    9110 says, or raw deflate, as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._name = "gzip" if gzip else "deflate"
        self._head = b""  # deflate: the first bytes, until the wrapping is known
        self._obj = self._gzip_member() if gzip else None
        self._members = 0  # complete gzip members so far
        self._done = False  # the stream ended: what follows is ignored

    @staticmethod
    def _gzip_member() -> zlib._Decompress:
        return zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._obj is None:
            self._head += data
            if len(self._head) < 2:
                return
            data, self._head = self._head, b""
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._obj = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        while data and not self._done:
            try:
                yield from self._drain(data)
            except zlib.error as exc:
                if self._members:  # bytes after a complete member (padding, junk): ignored
                    self._done = True
                    return
                raise BodyDecodeError(f"not valid {self._name}: {exc}") from exc
            data = b""
            if self._obj.eof:
                data = self._obj.unused_data
                if self._name == "gzip":
                    self._members += 1
                    self._obj = self._gzip_member()  # another member may follow
                else:
                    self._done = True

    def _drain(self, data: bytes) -> Iterator[bytes]:
        """Decode `data`, a bounded step at a time (zlib keeps the input it has not used)."""
        piece = self._obj.decompress(data, STEP)
        while True:
            if piece:
                yield piece
            if not self._obj.unconsumed_tail or self._obj.eof:
                return
            piece = self._obj.decompress(self._obj.unconsumed_tail, STEP)

    def finish(self) -> Iterator[bytes]:
        if self._head:  # a one-byte deflate body: not a stream at all
            raise BodyDecodeError(f"not valid {self._name}: a body of one byte")
        return iter(())  # a stream cut short keeps what it decoded


class _Brotli:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            # The decompressor takes new input only once it has given out all it holds, and
            # it holds at most STEP-ish bytes at a time.
            piece = self._obj.process(data, output_buffer_limit=STEP)
            while piece:
                yield piece
                if self._obj.is_finished():
                    return
                piece = self._obj.process(b"", output_buffer_limit=STEP)
        except brotli.error as exc:
            raise BodyDecodeError(f"not valid br: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        return iter(())


class _Zstd:
    """Zstandard, possibly several frames (RFC 8878 section 3.1)."""

    def __init__(self) -> None:
        self._obj = zstd.ZstdDecompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            while True:
                piece = self._obj.decompress(data, max_length=STEP)
                data = b""
                if piece:
                    yield piece
                if self._obj.eof:
                    data = self._obj.unused_data
                    if not data:
                        return
                    self._obj = zstd.ZstdDecompressor()
                elif self._obj.needs_input:
                    return
        except zstd.ZstdError as exc:
            raise BodyDecodeError(f"not valid zstd: {exc}") from exc

    def finish(self) -> Iterator[bytes]:
        return iter(())


_DECODERS = {
    "gzip": lambda: _Zlib(gzip=True),
    "x-gzip": lambda: _Zlib(gzip=True),
    "deflate": lambda: _Zlib(gzip=False),
}
if brotli is not None:
    _DECODERS["br"] = _Brotli
if zstd is not None:
    _DECODERS["zstd"] = _Zstd

# What the crawler asks for in Accept-Encoding: what it decodes, in order of preference.
SUPPORTED: tuple[str, ...] = tuple(c for c in ("gzip", "deflate", "br", "zstd") if c in _DECODERS)


def _decoders(content_encoding: str | None) -> list[_Decoder]:
    """The decoders to run, first the one for the coding applied last. None of them when a
    coding is unknown: the body is then kept as it came (a browser would show it as is)."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if any(c not in _DECODERS for c in codings):
        return []
    return [_DECODERS[c]() for c in reversed(codings)]


def _through(decoders: list[_Decoder], pieces: Iterator[bytes]) -> Iterator[bytes]:
    if not decoders:
        yield from pieces
        return
    first, rest = decoders[0], decoders[1:]
    for piece in pieces:
        yield from _through(rest, first.feed(piece))


def _finish(decoders: list[_Decoder]) -> Iterator[bytes]:
    for i, decoder in enumerate(decoders):
        yield from _through(decoders[i + 1 :], decoder.finish())


class Body:
    """The decoded body of one response under a byte cap. `feed` each raw chunk as it comes
    and `finish` at the end of the HTTP body; either raises BodyTooLarge as soon as the
    decoded size passes the cap (having decoded at most one step more), or BodyDecodeError."""

    def __init__(self, content_encoding: str | None, max_bytes: int) -> None:
        self._decoders = _decoders(content_encoding)
        self._max_bytes = max_bytes
        self._chunks: list[bytes] = []
        self.size = 0  # decoded bytes so far

    def feed(self, raw: bytes) -> None:
        self._take(_through(self._decoders, iter((raw,))))

    def finish(self) -> bytes:
        self._take(_finish(self._decoders))
        return b"".join(self._chunks)

    def so_far(self) -> bytes:
        """The first max_bytes decoded bytes, for a reader that cuts rather than refuses
        (robots.txt is read up to a size, RFC 9309 2.5)."""
        return b"".join(self._chunks)

    def _take(self, pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            room = self._max_bytes - self.size
            self.size += len(piece)
            if self.size > self._max_bytes:
                self._chunks.append(piece[:room])
                raise BodyTooLarge(self._max_bytes, self.size)
            self._chunks.append(piece)

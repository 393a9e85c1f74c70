"""OTLP/HTTP request bodies: framing (Content-Length or chunked), the size limit, gzip.

Every body is bounded by the listener's limit whatever its framing, and again after
gunzip; an oversized body is read (up to ``DISCARD_FACTOR`` times the limit) and dropped so
the sender can read the 413. Reads go through ``DeadlineReader``: however slowly the bytes
drip, a read fails once the phase's deadline (idle, headers, body) passed.
"""

from __future__ import annotations

import io
import math
import re
import socket
import time
import zlib
from email.message import Message
from http import HTTPStatus
from typing import Any

DISCARD_FACTOR = 4  # an oversized body up to this many times the limit is read and dropped
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_TRAILERS = 64


class Refused(Exception):
    """A body that cannot be taken: answered with ``status`` and the connection closed;
    ``reason`` is the rejection metric ("" for none)."""

    def __init__(self, status: HTTPStatus, message: str, reason: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason = status, message, reason


class DeadlineReader(io.RawIOBase):
    """Socket reads that fail once a deadline passes (however slowly the bytes drip)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.deadline = math.inf

    def arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("read deadline passed")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


def read_body(rfile: io.BufferedIOBase, headers: Message, limit: int) -> bytes:
    """The request's body, unframed and gunzipped, at most ``limit`` bytes; ``Refused``
    otherwise."""
    coding = (headers.get("Transfer-Encoding") or "").strip().lower()
    if coding and headers.get("Content-Length") is not None:
        raise Refused(HTTPStatus.BAD_REQUEST, "Content-Length and Transfer-Encoding "
                      "together are ambiguous: send one", "malformed")
    if coding == "chunked":
        body = _read_chunked(rfile, limit)
    elif coding:
        raise Refused(HTTPStatus.NOT_IMPLEMENTED, "Transfer-Encoding must be chunked", "")
    else:
        body = _read_sized(rfile, headers.get("Content-Length", ""), limit)
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        raise Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                      "Content-Encoding must be gzip or identity", "unsupported_media_type")
    return gunzip(body, limit)


def _read_sized(rfile: io.BufferedIOBase, text: str, limit: int) -> bytes:
    if not text.isdigit():
        raise Refused(HTTPStatus.LENGTH_REQUIRED,
                      "Content-Length (or Transfer-Encoding: chunked) required", "")
    length = int(text)
    if length > limit:
        _discard(rfile, min(length, DISCARD_FACTOR * limit))  # so the client reads the 413
        raise _too_large(limit)
    body = rfile.read(length)
    if len(body) < length:
        raise Refused(HTTPStatus.BAD_REQUEST, "body shorter than its Content-Length",
                      "malformed")
    return body


def _read_chunked(rfile: io.BufferedIOBase, limit: int) -> bytes:
    """RFC 9112 chunked framing; data past ``limit`` is read (up to the discard bound) and
    dropped, then refused."""
    parts: list[bytes] = []
    total = 0
    while True:
        line = rfile.readline(1024)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not _CHUNK_SIZE.fullmatch(size_text):
            raise Refused(HTTPStatus.BAD_REQUEST, "malformed chunked body", "malformed")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        if total > DISCARD_FACTOR * limit:
            raise _too_large(limit)
        data = rfile.read(size)
        if len(data) < size or rfile.readline(3) not in (b"\r\n", b"\n"):
            raise Refused(HTTPStatus.BAD_REQUEST, "malformed chunked body", "malformed")
        if total <= limit:
            parts.append(data)
    for _ in range(_MAX_TRAILERS + 1):  # trailer fields, ignored, up to the empty line
        if rfile.readline(8192) in (b"\r\n", b"\n", b""):
            break
    else:
        raise Refused(HTTPStatus.BAD_REQUEST, "too many chunked trailer fields", "malformed")
    if total > limit:
        raise _too_large(limit)
    return b"".join(parts)


def _discard(rfile: io.BufferedIOBase, length: int) -> None:
    while length > 0:
        chunk = rfile.read(min(length, 1 << 16))
        if not chunk:
            return
        length -= len(chunk)


def _too_large(limit: int) -> Refused:
    return Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body above the {limit}-byte limit",
                   "too_large")


def gunzip(body: bytes, limit: int) -> bytes:
    """A complete gzip body (one or more members), at most ``limit`` bytes unpacked.

    A body cut short, or followed by anything but another gzip member, is refused: a
    truncated stream must not be taken for the whole request.
    """
    out = bytearray()
    data = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += inflater.decompress(data, limit + 1 - len(out))
        except zlib.error:
            raise Refused(HTTPStatus.BAD_REQUEST, "body is not valid gzip",
                          "malformed") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                          f"gunzipped body above the {limit}-byte limit", "too_large")
        if not inflater.eof:
            raise Refused(HTTPStatus.BAD_REQUEST, "gzip body is cut short", "malformed")
        data = inflater.unused_data
        if not data:
            return bytes(out)
        if not data.startswith(_GZIP_MAGIC):
            raise Refused(HTTPStatus.BAD_REQUEST, "gzip body is followed by data that is "
                          "not gzip", "malformed")

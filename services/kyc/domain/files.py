"""What an uploaded file really is, from its bytes (never from its name).

Accepted: JPEG, PNG and PDF, 1 byte to MAX_DOCUMENT_BYTES. Beyond the magic
bytes each format's structure is checked just enough to refuse truncated or
corrupted files: a JPEG must end with its EOI marker, a PNG must open with an
IHDR chunk whose CRC is right and close with IEND, and a PDF must carry a
header, at least one object, a page and the `%%EOF` trailer marker.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024

JPEG = "image/jpeg"
PNG = "image/png"
PDF = "application/pdf"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PDF_HEADER = re.compile(rb"^%PDF-[12]\.\d")
_PDF_OBJECT = re.compile(rb"\d+\s+\d+\s+obj\b")
_PDF_PAGE = re.compile(rb"/Type\s*/Page\b")
# The spec puts %%EOF at the end; writers may append a little whitespace/junk.
_PDF_TRAILER_WINDOW = 1024
# JPEG writers sometimes pad after EOI; tolerate a small tail.
_JPEG_TAIL_WINDOW = 64


class FileRejected(Exception):
    """The content cannot be a KYC document; `reason` is the API's reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Sniffed:
    content_type: str
    size_bytes: int


def sniff(content: bytes) -> Sniffed:
    """The content's media type, or FileRejected (EMPTY_FILE, FILE_TOO_LARGE,
    UNSUPPORTED_FILE_TYPE, CORRUPTED_FILE)."""
    size = len(content)
    if size == 0:
        raise FileRejected("EMPTY_FILE", "the file is empty")
    if size > MAX_DOCUMENT_BYTES:
        raise FileRejected("FILE_TOO_LARGE", f"the file is over {MAX_DOCUMENT_BYTES} bytes")
    if content.startswith(b"\xff\xd8\xff"):
        _check_jpeg(content)
        return Sniffed(JPEG, size)
    if content.startswith(_PNG_SIGNATURE):
        _check_png(content)
        return Sniffed(PNG, size)
    if content.startswith(b"%PDF-"):
        _check_pdf(content)
        return Sniffed(PDF, size)
    raise FileRejected("UNSUPPORTED_FILE_TYPE", "only JPEG, PNG or PDF files are accepted")


def _corrupted(kind: str, why: str) -> FileRejected:
    return FileRejected("CORRUPTED_FILE", f"the {kind} file is corrupted: {why}")


def _check_jpeg(content: bytes) -> None:
    if len(content) < 4 or b"\xff\xd9" not in content[-_JPEG_TAIL_WINDOW:]:
        raise _corrupted("JPEG", "no end-of-image marker")


def _check_png(content: bytes) -> None:
    # signature(8) + IHDR: length(4) "IHDR"(4) data(13) crc(4)
    ihdr = content[8:33]
    if len(ihdr) < 25 or ihdr[:8] != b"\x00\x00\x00\x0dIHDR":
        raise _corrupted("PNG", "no header chunk")
    if zlib.crc32(ihdr[4:21]) != int.from_bytes(ihdr[21:25], "big"):
        raise _corrupted("PNG", "header checksum mismatch")
    width, height = int.from_bytes(ihdr[8:12], "big"), int.from_bytes(ihdr[12:16], "big")
    if width == 0 or height == 0:
        raise _corrupted("PNG", "zero-sized image")
    if not content.rstrip(b"\x00").endswith(b"IEND\xaeB`\x82"):
        raise _corrupted("PNG", "no end chunk")


def _check_pdf(content: bytes) -> None:
    if not _PDF_HEADER.match(content):
        raise _corrupted("PDF", "bad header")
    if b"%%EOF" not in content[-_PDF_TRAILER_WINDOW:]:
        raise _corrupted("PDF", "no end-of-file marker")
    if not _PDF_OBJECT.search(content):
        raise _corrupted("PDF", "no objects")
    # Pages of PDF 1.5+ may sit inside compressed object streams (/ObjStm).
    if not (_PDF_PAGE.search(content) or b"/ObjStm" in content):
        raise _corrupted("PDF", "no pages")

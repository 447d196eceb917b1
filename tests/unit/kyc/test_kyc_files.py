"""File sniffing: the type comes from the bytes, broken files are refused."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kyc.domain.files import (
    JPEG,
    MAX_DOCUMENT_BYTES,
    PDF,
    PNG,
    FileRejected,
    sniff,
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int = 2, height: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def jpeg(body: bytes = b"\x00" * 32) -> bytes:
    return (
        b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + body + b"\xff\xd9"
    )


def pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >> endobj\n"
        b"trailer << /Root 1 0 R >>\n%%EOF\n"
    )


@pytest.mark.parametrize(("content", "kind"), [(png(), PNG), (jpeg(), JPEG), (pdf(), PDF)])
def test_real_files_are_recognised(content: bytes, kind: str) -> None:
    found = sniff(content)
    assert found.content_type == kind
    assert found.size_bytes == len(content)


def reason(content: bytes) -> str:
    with pytest.raises(FileRejected) as err:
        sniff(content)
    return err.value.reason


def test_empty_and_oversize() -> None:
    assert reason(b"") == "EMPTY_FILE"
    assert reason(b"%PDF-1.4" + b"\x00" * MAX_DOCUMENT_BYTES) == "FILE_TOO_LARGE"


def test_a_name_is_not_a_type() -> None:
    # A text file, a GIF and an executable whatever they are called.
    assert reason(b"hello, I am document.pdf") == "UNSUPPORTED_FILE_TYPE"
    assert reason(b"GIF89a\x01\x00\x01\x00") == "UNSUPPORTED_FILE_TYPE"
    assert reason(b"MZ\x90\x00") == "UNSUPPORTED_FILE_TYPE"


def test_corrupted_files() -> None:
    assert reason(pdf()[:-7]) == "CORRUPTED_FILE"  # truncated: no %%EOF
    assert reason(b"%PDF-1.4\n%%EOF\n") == "CORRUPTED_FILE"  # no object, no page
    assert reason(b"%PDF-x\n1 0 obj /Type /Page endobj %%EOF") == "CORRUPTED_FILE"
    assert reason(png()[:40]) == "CORRUPTED_FILE"  # truncated PNG
    broken = bytearray(png())
    broken[20] ^= 0xFF  # header byte flipped: CRC mismatch
    assert reason(bytes(broken)) == "CORRUPTED_FILE"
    assert reason(png(width=0)) == "CORRUPTED_FILE"
    assert reason(jpeg()[:-2] + b"\x00" * 100) == "CORRUPTED_FILE"  # no EOI


@given(st.binary(max_size=2048))
def test_sniff_never_crashes_and_only_names_known_types(data: bytes) -> None:
    try:
        found = sniff(data)
    except FileRejected as exc:
        assert exc.reason in {"EMPTY_FILE", "UNSUPPORTED_FILE_TYPE", "CORRUPTED_FILE"}
    else:
        assert found.content_type in {JPEG, PNG, PDF}
        assert found.size_bytes == len(data)


@given(st.binary(max_size=512))
def test_any_prefix_cut_of_a_pdf_without_trailer_is_refused(tail: bytes) -> None:
    # Whatever follows the header, a PDF with no %%EOF is never accepted.
    content = b"%PDF-1.7\n" + tail.replace(b"%%EOF", b"")
    assert reason(content) == "CORRUPTED_FILE"

"""PIX BR Code ("copia e cola"): EMV QRCPS merchant-presented payload with CRC16.

Layout (BACEN Manual de Padrões para Iniciação do Pix): TLV fields `IDLLvalue`
(two-digit id, two-digit length); 00 format indicator "01", 26 merchant
account (00 GUI "br.gov.bcb.pix", 01 key, 02 description), 52 MCC "0000",
53 currency "986" (BRL), 54 amount "123.45", 58 country "BR", 59 name (≤25),
60 city (≤15), 62 additional data (05 txid), 63 CRC16 over everything before
its value including "6304".
"""

from __future__ import annotations

import unicodedata

GUI = "br.gov.bcb.pix"
MAX_NAME = 25
MAX_CITY = 15
MAX_FIELD = 99


def crc16_ccitt(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no xor-out."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _tlv(tag: str, value: str) -> str:
    assert len(tag) == 2 and tag.isdigit()
    if len(value) > MAX_FIELD:
        raise ValueError(f"field {tag} longer than {MAX_FIELD}")
    return f"{tag}{len(value):02d}{value}"


def _ascii(text: str, limit: int) -> str:
    # Payment apps render the payload's name/city; accents are not allowed there.
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c) and c.isprintable())
    return plain.encode("ascii", "ignore").decode()[:limit].strip() or "NA"


def format_amount(minor_units: int) -> str:
    """Centavos as the payload's decimal text: 12345 -> "123.45" (no float)."""
    if minor_units <= 0:
        raise ValueError("amount must be positive")
    return f"{minor_units // 100}.{minor_units % 100:02d}"


def build(
    *, key: str, amount_minor: int, name: str, city: str, txid: str, description: str = ""
) -> str:
    account = _tlv("00", GUI) + _tlv("01", key)
    if description:
        room = MAX_FIELD - len(account) - 4
        if room > 0:
            account += _tlv("02", _ascii(description, room))
    payload = (
        _tlv("00", "01")
        + _tlv("26", account)
        + _tlv("52", "0000")
        + _tlv("53", "986")
        + _tlv("54", format_amount(amount_minor))
        + _tlv("58", "BR")
        + _tlv("59", _ascii(name, MAX_NAME))
        + _tlv("60", _ascii(city, MAX_CITY))
        + _tlv("62", _tlv("05", txid))
        + "6304"
    )
    return payload + f"{crc16_ccitt(payload.encode()):04X}"


def parse(payload: str) -> dict[str, str]:
    """Top-level fields of a payload {id: value}; ValueError on bad TLV or CRC."""
    if len(payload) < 8 or payload[-8:-4] != "6304":
        raise ValueError("payload must end with the CRC field 63")
    expected = f"{crc16_ccitt(payload[:-4].encode()):04X}"
    if payload[-4:].upper() != expected:
        raise ValueError("CRC16 does not match")
    fields: dict[str, str] = {}
    i = 0
    while i < len(payload):
        tag, size = payload[i : i + 2], payload[i + 2 : i + 4]
        if not (tag.isdigit() and size.isdigit()):
            raise ValueError(f"malformed field at {i}")
        value = payload[i + 4 : i + 4 + int(size)]
        if len(value) != int(size):
            raise ValueError(f"field {tag} is truncated")
        fields[tag] = value
        i += 4 + int(size)
    return fields


def subfields(value: str) -> dict[str, str]:
    """The nested TLV of a template field (26, 62)."""
    return parse_nested(value)


def parse_nested(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(value):
        tag, size = value[i : i + 2], value[i + 2 : i + 4]
        if not (tag.isdigit() and size.isdigit()):
            raise ValueError(f"malformed nested field at {i}")
        out[tag] = value[i + 4 : i + 4 + int(size)]
        i += 4 + int(size)
    return out

"""BR Code ("copia e cola") and its CRC16-CCITT."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.payments.domain import brcode


def test_crc16_ccitt_false_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE for "123456789".
    assert brcode.crc16_ccitt(b"123456789") == 0x29B1
    assert brcode.crc16_ccitt(b"") == 0xFFFF


def test_published_example_payload_checks() -> None:
    # BACEN's static example (Manual de Padrões para Iniciação do Pix, anexo).
    example = (
        "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
        "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
    )
    fields = brcode.parse(example)
    assert fields["00"] == "01" and fields["58"] == "BR"
    assert brcode.parse_nested(fields["26"])["01"] == "123e4567-e12b-12d1-a456-426655440000"


def test_build_and_parse_round_trip() -> None:
    code = brcode.build(
        key="8b8f0b1e-3d4c-4e5f-9a6b-7c8d9e0f1a2b",
        amount_minor=12345,
        name="Fintech Pagamentos Ação",
        city="São Paulo",
        txid="a" * 32,
        description="Pedido 42",
    )
    fields = brcode.parse(code)
    assert fields["54"] == "123.45"
    assert fields["53"] == "986"
    assert fields["59"] == "Fintech Pagamentos Acao"
    assert fields["60"] == "Sao Paulo"
    assert brcode.parse_nested(fields["62"])["05"] == "a" * 32
    assert brcode.parse_nested(fields["26"])["00"] == "br.gov.bcb.pix"


@given(
    st.integers(min_value=1, max_value=10**12),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=26, max_size=35),
)
def test_any_amount_and_txid_round_trip(amount: int, txid: str) -> None:
    code = brcode.build(key="ana@example.com", amount_minor=amount, name="X", city="Y", txid=txid)
    fields = brcode.parse(code)
    reais, centavos = fields["54"].split(".")
    assert int(reais) * 100 + int(centavos) == amount
    assert brcode.parse_nested(fields["62"])["05"] == txid


@given(st.integers(min_value=0, max_value=200), st.characters(min_codepoint=48, max_codepoint=90))
def test_any_single_corruption_is_detected(pos: int, char: str) -> None:
    code = brcode.build(key="ana@example.com", amount_minor=500, name="X", city="Y", txid="b" * 30)
    pos = pos % (len(code) - 4)
    if code[pos] == char:
        return
    corrupted = code[:pos] + char + code[pos + 1 :]
    with pytest.raises(ValueError):
        brcode.parse(corrupted)


def test_amount_must_be_positive() -> None:
    with pytest.raises(ValueError):
        brcode.format_amount(0)

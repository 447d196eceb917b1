"""CPF/CNPJ check digits: DOMAIN.md's worked examples plus invariants."""

from hypothesis import given
from hypothesis import strategies as st

from services.brazil.documents import (
    cnpj_check_digits,
    cpf_check_digits,
    is_valid_cnpj,
    is_valid_cpf,
    mask_cpf,
    normalize_cnpj,
    normalize_cpf,
)


def test_domain_examples() -> None:
    assert normalize_cpf("111.444.777-35") == "11144477735"
    assert is_valid_cnpj("11.222.333/0001-81")
    assert not is_valid_cpf("111.444.777-36")
    assert not is_valid_cnpj("11.222.333/0001-82")


def test_all_equal_digits_are_invalid_even_though_the_arithmetic_passes() -> None:
    for d in "0123456789":
        assert not is_valid_cpf(d * 11)
        assert not is_valid_cnpj(d * 14)


def test_wrong_lengths_and_letters_rejected() -> None:
    for bad in ["", "123", "1114447773", "111444777350", "11144477a35", "111.444.777-3 5x"]:
        assert not is_valid_cpf(bad)


def test_alphanumeric_cnpj() -> None:
    # IN RFB 2.229/2024 example body: 12ABC34501DE -> check digits 35.
    assert cnpj_check_digits("12ABC34501DE") == "35"
    assert normalize_cnpj("12.abc.345/01de-35") == "12ABC34501DE35"
    assert not is_valid_cnpj("12.ABC.345/01DE-36")
    # check digits must stay numeric
    assert not is_valid_cnpj("12ABC34501DEA5")


def test_mask() -> None:
    assert mask_cpf("11144477735") == "***.444.777-**"


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9).filter(
    lambda s: len(set(s)) > 1
)


@given(nine_digits)
def test_generated_cpfs_are_valid_and_a_changed_check_digit_is_caught(body: str) -> None:
    # Only the check digits are guaranteed: remainders 0 and 1 both give digit 0,
    # so some substitutions in the body are (by design of the CPF) undetectable.
    cpf = body + cpf_check_digits(body)
    assert is_valid_cpf(cpf)
    for position in (9, 10):
        for replacement in "0123456789":
            if replacement == cpf[position]:
                continue
            mutated = cpf[:position] + replacement + cpf[position + 1 :]
            if len(set(mutated)) == 1:
                continue
            assert not is_valid_cpf(mutated), mutated


twelve_chars = st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=12, max_size=12)


@given(twelve_chars)
def test_generated_cnpjs_are_valid(body: str) -> None:
    cnpj = body + cnpj_check_digits(body)
    if len(set(cnpj)) > 1:
        assert is_valid_cnpj(cnpj)
        assert is_valid_cnpj(f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}")

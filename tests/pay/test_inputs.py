"""Reading phone numbers and amounts the way people type them."""

from __future__ import annotations

import pytest

from bot.domain import Network, mask_phone
from bot.pay.inputs import (
    InputError,
    InputProblem,
    guess_network,
    parse_amount,
    parse_phone,
)


@pytest.mark.parametrize(
    ("typed", "phone"),
    [
        ("0712 345 678", "254712345678"),
        ("0112345678", "254112345678"),
        ("+254712345678", "254712345678"),
        ("254712345678", "254712345678"),
        ("+254 712-345-678", "254712345678"),
        ("(0712) 345.678", "254712345678"),
        ("712345678", "254712345678"),
    ],
)
def test_kenyan_phone_forms_normalise(typed: str, phone: str) -> None:
    assert parse_phone(typed) == phone


@pytest.mark.parametrize(
    "typed", ["", "0812345678", "255712345678", "071234567", "07123456789", "٠٧١٢٣٤٥٦٧٨", "+254 7I2345678"]
)
def test_other_phones_are_refused(typed: str) -> None:
    with pytest.raises(InputError):
        parse_phone(typed)


@pytest.mark.parametrize(
    ("phone", "network"),
    [
        ("254712345678", Network.MPESA),
        ("254110345678", Network.MPESA),
        ("254733123456", Network.AIRTEL),
        ("254750123456", Network.AIRTEL),
        ("254785123456", Network.AIRTEL),
        ("254100123456", Network.AIRTEL),
        *((f"254{prefix}123456", Network.AIRTEL) for prefix in ("751", "752", "753", "754", "755", "756")),
        ("254762123456", Network.AIRTEL),
        ("254101123456", Network.AIRTEL),
        ("254102123456", Network.AIRTEL),
        ("254757123456", Network.MPESA),
        ("254761123456", Network.MPESA),
        ("254763123456", Network.MPESA),
        ("254103123456", Network.MPESA),
        ("254740123456", Network.MPESA),
    ],
)
def test_network_is_guessed_from_the_prefix(phone: str, network: Network) -> None:
    assert guess_network(phone) is network


@pytest.mark.parametrize(
    ("typed", "amount"),
    [
        ("500", 500),
        ("1,000", 1000),
        ("KES 500", 500),
        ("kes500", 500),
        ("Ksh. 500", 500),
        ("500/=", 500),
        ("KES 1,500/=", 1500),
        ("12.00", 12),
        ("150,000", 150000),
        (" 10 ", 10),
        ("+20", 20),
        ("1 000", 1000),
        ("KES 12 500", 12500),
        ("KES Ksh 500", 500),  # a prefix doubled
        ("0000000000000500", 500),
        ("1.5k", 1500),  # the fraction of a thousand is hundreds, not units
        ("2.25K", 2250),
        ("3k", 3000),
        ("KES Ksh sh 500", None),  # a third is not plainly a number
        ("500 bob", None),
    ],
)
def test_amount_forms(typed: str, amount: int | None) -> None:
    if amount is None:
        with pytest.raises(InputError):
            parse_amount(typed, 10, 150_000)
    else:
        assert parse_amount(typed, 10, 150_000) == amount


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("abc", InputProblem.AMOUNT_NOT_A_NUMBER),
        ("-5", InputProblem.AMOUNT_TOO_SMALL),
        ("-500", InputProblem.AMOUNT_TOO_SMALL),  # well above the minimum: refused for its sign
        ("KES -1,500", InputProblem.AMOUNT_TOO_SMALL),
        ("+0", InputProblem.AMOUNT_TOO_SMALL),
        ("0", InputProblem.AMOUNT_TOO_SMALL),
        ("12.50", InputProblem.AMOUNT_NOT_WHOLE),
        ("1e9", InputProblem.AMOUNT_NOT_A_NUMBER),
        ("🙂", InputProblem.AMOUNT_NOT_A_NUMBER),
        ("10000000000000000000000", InputProblem.AMOUNT_TOO_LARGE),
        ("1,00", InputProblem.AMOUNT_NOT_A_NUMBER),
        ("150001", InputProblem.AMOUNT_TOO_LARGE),
    ],
)
def test_amount_problems(typed: str, problem: InputProblem) -> None:
    with pytest.raises(InputError) as caught:
        parse_amount(typed, 10, 150_000)
    assert caught.value.problem is problem and str(caught.value) == problem.value


def test_phone_masking() -> None:
    assert mask_phone("254712345678") == "07** ***678"

"""Statement imports through the edge, checked against the bank itself.

The expected transaction count is read from the data-holder simulator directly
(paging its accounts API), so "everything within the consent was imported"
means the same set the bank serves, not a number the service reports about
itself. Each test uses explicit booking dates so both sides read the same range.
"""

from __future__ import annotations

import pytest

from devstack.stack import Stack
from tests.integration.edge import EdgeClient, fresh_cpf
from tests.integration.risk.risk_it_cpfs import HEAVY_CPF
from tests.integration.risk.risk_it_support import (
    BANK_PAGE_SIZE,
    FAILED,
    IMPORT_TERMINAL,
    SUCCEEDED,
    WAITING_PROVIDER,
    Bank,
    BankLog,
    OpenFinanceApp,
    as_int,
    customer,
    months_ago,
)

pytestmark = pytest.mark.integration

IMPORT_TIMEOUT_S = 60.0
# With a 30% error rate and 20% rate limiting every page needs ~2 tries on
# average, plus the bank's Retry-After; still well inside this bound.
FAULTY_IMPORT_TIMEOUT_S = 90.0


def dates() -> dict[str, str]:
    return {"from_date": months_ago(12), "to_date": months_ago(0)}


def test_heavy_customer_import_pages_through_everything_once(edge: EdgeClient, bank: Bank) -> None:
    app = OpenFinanceApp(edge, customer(edge, HEAVY_CPF))
    consent = app.authorised_consent(bank)
    span = dates()
    first = app.import_all(consent["name"], IMPORT_TIMEOUT_S, **span)

    at_bank = bank.read_all(consent["consent_id"], span["from_date"], span["to_date"])
    assert at_bank.status == 200
    # The heavy customer is the many-pages case: 3 accounts, ~3,000 transactions.
    assert at_bank.accounts == 3, at_bank
    assert at_bank.transactions > 2 * BANK_PAGE_SIZE, at_bank
    assert as_int(first["accounts_imported"]) == at_bank.accounts
    seen_first = as_int(first["transactions_imported"]) + as_int(first["transactions_skipped"])
    # Stored + already-stored (an earlier run of this suite may have imported
    # this customer before) = exactly what the bank serves: no page lost, none twice.
    assert seen_first == at_bank.transactions, (first, at_bank)
    # Every page of every account was fetched (a smaller page size means more).
    assert as_int(first["pages_fetched"]) >= at_bank.pages, (first, at_bank)
    assert first["complete_time"] and first["consent"] == consent["name"]

    # Re-import under the same consent: nothing new, everything recognised.
    second = app.import_all(consent["name"], IMPORT_TIMEOUT_S, **span)
    assert second["name"] != first["name"]
    assert as_int(second["transactions_imported"]) == 0, second
    assert as_int(second["transactions_skipped"]) == at_bank.transactions, second

    listed = app.call("GET", "/v1/open-finance/imports", params={"consent": consent["name"]})
    assert listed.status_code == 200, listed.text
    names = [i["name"] for i in listed.json()["statement_imports"]]
    assert names[:2] == [second["name"], first["name"]]  # newest first


def test_import_survives_bank_errors_and_rate_limits(
    stack: Stack, edge: EdgeClient, bank: Bank
) -> None:
    # The heavy customer: enough requests (≥ 5 pages) that the seeded fault
    # sequence (seed 1: requests 3-4 rate-limited, 7-9 errors) is surely met.
    app = OpenFinanceApp(edge, customer(edge, HEAVY_CPF))
    # The consent is made on a healthy bank; only the import meets the faults.
    consent = app.authorised_consent(bank)
    span = dates()
    log = BankLog(stack)
    with bank.faulty(error_rate=0.3, rate_limit_rate=0.2, seed=1):
        assert bank.faults().get("error_rate") == 0.3  # the faults really are on
        started = app.start_import(consent["name"], **span)
        assert started.status_code == 200, started.text
        finished, _ = app.wait_import(started.json()["name"], FAULTY_IMPORT_TIMEOUT_S)
    assert finished["state"] == SUCCEEDED, finished
    # The service really met rate limits and errors on its way (and retried them).
    met = log.statuses()
    assert 429 in met and ({500, 503} & set(met)), met

    at_bank = bank.read_all(consent["consent_id"], span["from_date"], span["to_date"])
    assert at_bank.status == 200 and at_bank.transactions > 0
    # New + already stored = the bank's set exactly: a retried page neither
    # lost (fewer) nor counted twice (more).
    seen = as_int(finished["transactions_imported"]) + as_int(finished["transactions_skipped"])
    assert seen == at_bank.transactions, (finished, at_bank)
    assert as_int(finished["accounts_imported"]) == at_bank.accounts


def test_outage_is_reported_and_import_succeeds_after_recovery(
    edge: EdgeClient, bank: Bank
) -> None:
    app = OpenFinanceApp(edge, customer(edge, fresh_cpf()))
    consent = app.authorised_consent(bank)
    span = dates()
    with bank.faulty(outage=True):
        started = app.start_import(consent["name"], **span)
        assert started.status_code == 200, started.text
        name = started.json()["name"]
        # While the bank is down the import must say so: waiting for the
        # provider (retrying) or failed with a reason, never SUCCEEDED.
        during, _ = app.wait_import(
            name, timeout_s=30, until=frozenset({WAITING_PROVIDER, FAILED, SUCCEEDED})
        )
        assert during["state"] in (WAITING_PROVIDER, FAILED), during
    if during["state"] == FAILED:
        assert during["failure_reason"], during
        finished = app.import_all(consent["name"], IMPORT_TIMEOUT_S, **span)
    else:
        finished, _ = app.wait_import(name, IMPORT_TIMEOUT_S, until=IMPORT_TERMINAL)
    assert finished["state"] == SUCCEEDED, finished
    at_bank = bank.read_all(consent["consent_id"], span["from_date"], span["to_date"])
    assert as_int(finished["transactions_imported"]) == at_bank.transactions, (finished, at_bank)

"""Risk service helpers: names, import ids, consent gating, date ranges, pagination
tokens, decision inputs round trip, replay and the offline re-score report."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest

from services.platform import pagination
from services.platform.errors import AppError
from services.risk import store
from services.risk.domain.decision import Applicant, decide
from services.risk.domain.features import Features
from services.risk.domain.scorecard import load_model
from services.risk.rescore import Report, compare, render, resolve_model
from services.risk.service import (
    CachedIdentityDirectory,
    FeatureCache,
    PersonFacts,
    _import_range,
    _next_token,
    applicant_from_json,
    applicant_to_json,
    consent_block_reason,
    import_id_for,
    missing_permissions,
    outputs_of,
    parse_id,
    replayed_row,
    stored_outputs,
    workflow_id,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
TODAY = date(2026, 11, 29)


def _consent(
    state: str, *, expire_in: timedelta = timedelta(days=30), perms: list[str] | None = None
) -> store.ConsentRow:
    return store.ConsentRow(
        id=uuid.uuid4(),
        user_id="u1",
        data_holder="bancoex",
        permissions=perms or ["ACCOUNTS_READ", "ACCOUNTS_TRANSACTIONS_READ"],
        expire_at=NOW + expire_in,
        state=state,
        bank_consent_id="urn:bancoex:1",
        authorisation_uri="",
        redirect_state="s",
        cpf_ciphertext=b"",
        created_at=NOW,
        updated_at=NOW,
    )


def test_names_parse_to_ids_or_invalid_argument() -> None:
    ident = uuid.uuid4()
    assert parse_id(f"consents/{ident}", "consents/", "name") == ident
    for bad in ("consents/", "consents/x", f"imports/{ident}", str(ident)):
        with pytest.raises(AppError) as caught:
            parse_id(bad, "consents/", "name")
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_import_id_is_stable_per_caller_and_key() -> None:
    a = import_id_for("u1", "key-1")
    assert a == import_id_for("u1", "key-1")  # a retried request names the same import
    assert a != import_id_for("u1", "key-2")
    assert a != import_id_for("u2", "key-1")
    assert workflow_id(a) == f"risk-statement-import-{a}"


def test_reads_are_blocked_with_a_reason_unless_authorised_and_unexpired() -> None:
    assert consent_block_reason(_consent("AUTHORISED"), NOW) is None
    assert consent_block_reason(_consent("REVOKED"), NOW) == "CONSENT_REVOKED"
    assert consent_block_reason(_consent("REJECTED"), NOW) == "CONSENT_REJECTED"
    assert consent_block_reason(_consent("EXPIRED"), NOW) == "CONSENT_EXPIRED"
    assert consent_block_reason(_consent("AWAITING_AUTHORISATION"), NOW) == "CONSENT_NOT_AUTHORISED"
    expired = _consent("AUTHORISED", expire_in=timedelta(seconds=-1))
    assert consent_block_reason(expired, NOW) == "CONSENT_EXPIRED"
    assert missing_permissions(_consent("AUTHORISED", perms=["ACCOUNTS_READ"])) == [
        "ACCOUNTS_TRANSACTIONS_READ"
    ]


def test_import_range_defaults_to_twelve_months_and_refuses_bad_ranges() -> None:
    assert _import_range("", "", TODAY) == (TODAY - timedelta(days=365), TODAY)
    assert _import_range("2026-01-01", "2026-02-01", TODAY) == (
        date(2026, 1, 1),
        date(2026, 2, 1),
    )
    for start, end in (
        ("2026-03-01", "2026-02-01"),  # reversed
        ("", "2026-12-31"),  # future (beyond the one day of time-zone slack)
        ("2024-01-01", "2026-01-01"),  # over 12 months
        ("01/02/2026", ""),  # not ISO
    ):
        with pytest.raises(AppError) as caught:
            _import_range(start, end, TODAY)
        assert caught.value.reason == "IMPORT_RANGE_INVALID"


def test_next_token_only_when_there_is_one_more_row() -> None:
    rows = [_consent("AUTHORISED") for _ in range(3)]
    assert _next_token(rows, 3, "consents:u1:") == ""
    token = _next_token(rows, 2, "consents:u1:")
    assert pagination.decode_time_id(token, "consents:u1:") == (rows[1].created_at, rows[1].id)
    with pytest.raises(AppError):  # the same token for another filter
        pagination.decode_time_id(token, "consents:u1:AUTHORISED")


APPLICANT = Applicant(
    birth_date=date(1990, 5, 17),
    cpf_status="REGULAR",
    kyc_status="APPROVED",
    bureau_score=720,
    bureau_negative_records=0,
)
FEATURES = Features.from_strings(
    {
        "months_of_history": "12",
        "monthly_income_minor": "600000",
        "income_stability": "0.95",
        "recurring_obligations_minor": "150000",
        "obligations_to_income": "0.25",
        "balance_volatility": "0.3",
        "days_in_overdraft": "0",
        "gambling_share": "0",
        "transaction_count": "300",
    }
)


def _decision_row(applicant: Applicant = APPLICANT) -> store.DecisionRow:
    model = load_model(None)
    decision = decide(applicant, FEATURES, model, 100_000, TODAY)
    return store.DecisionRow(
        id=uuid.uuid4(),
        user_id="u1",
        reference="quotes/1",
        requested_amount_minor=100_000,
        currency="BRL",
        term_months=12,
        decided_on=TODAY,
        model_version=model.version,
        applicant=applicant_to_json(applicant),
        features=FEATURES.as_strings(),
        created_at=NOW,
        expire_at=NOW + timedelta(days=3),
        **outputs_of(decision),
    )


def test_applicant_round_trips_through_json() -> None:
    assert applicant_from_json(applicant_to_json(APPLICANT)) == APPLICANT
    no_score = Applicant(date(2000, 1, 1), "REGULAR", "PENDING", None, 3)
    assert applicant_from_json(applicant_to_json(no_score)) == no_score


def test_replay_from_stored_inputs_is_identical() -> None:
    row = _decision_row()
    again = replayed_row(row, load_model(row.model_version))
    assert stored_outputs(again) == stored_outputs(row)
    assert again.id == row.id


def test_declines_store_readable_hard_rule_reasons() -> None:
    row = _decision_row(Applicant(date(1990, 5, 17), "REGULAR", "UNKNOWN", 720, 0))
    assert row.outcome == "DECLINED"
    codes = [r["code"] for r in row.reasons]
    assert "KYC_NOT_APPROVED" in codes
    kyc = row.reasons[codes.index("KYC_NOT_APPROVED")]
    assert kyc["hard_rule"] is True and kyc["contribution"] == "" and kyc["description"]


def test_rescore_report_counts_transitions_and_prints_them() -> None:
    rows = [_decision_row(), _decision_row(Applicant(date(1990, 5, 17), "REGULAR", "NO", 720, 0))]
    other = resolve_model("v2")
    assert resolve_model(other.version) == other
    report = Report(other.version)
    compare(report, rows, other, max_examples=5)
    assert report.customers == 2
    assert sum(report.transitions.values()) == 2
    # The KYC hard rule holds in every version: that customer stays declined.
    assert report.transitions[("DECLINED", "DECLINED")] == 1
    out = io.StringIO()
    render(report, out)
    text = out.getvalue()
    assert f"model: {other.version}" in text and "customers: 2" in text
    assert "DECLINED -> DECLINED: 1" in text
    with pytest.raises(SystemExit):
        resolve_model("nope")


def test_feature_cache_is_bounded_and_keyed_by_statements_version() -> None:
    cache = FeatureCache(max_entries=2)
    cache.put(("u1", TODAY, (1, NOW)), FEATURES)
    assert cache.get(("u1", TODAY, (1, NOW))) == FEATURES
    # A new import changes the version: the old entry is not reused.
    assert cache.get(("u1", TODAY, (2, NOW))) is None
    cache.put(("u2", TODAY, (1, NOW)), FEATURES)
    cache.get(("u1", TODAY, (1, NOW)))  # u1 used last: u2 is the oldest now
    cache.put(("u3", TODAY, (1, NOW)), FEATURES)
    assert cache.get(("u2", TODAY, (1, NOW))) is None
    assert cache.get(("u1", TODAY, (1, NOW))) == FEATURES
    assert cache.get(("u3", TODAY, (1, NOW))) == FEATURES


class _CountingDirectory:
    def __init__(self) -> None:
        self.calls = 0

    async def person(self, user_id: str) -> PersonFacts:
        self.calls += 1
        return PersonFacts(cpf="12345678909", birth_date=date(1990, 1, 1))


async def test_identity_facts_are_reused_within_the_ttl_only() -> None:
    inner = _CountingDirectory()
    now = [0.0]
    cached = CachedIdentityDirectory(inner, ttl_seconds=30, max_entries=1, clock=lambda: now[0])
    await cached.person("u1")
    await cached.person("u1")
    assert inner.calls == 1
    now[0] = 31.0  # past the TTL: identity is asked again
    await cached.person("u1")
    assert inner.calls == 2
    await cached.person("u2")  # evicts u1 (one entry at most)
    await cached.person("u1")
    assert inner.calls == 4

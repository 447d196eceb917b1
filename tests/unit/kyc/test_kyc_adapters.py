"""SigV4 signing against AWS's published S3 examples; provider-call redaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from services.kyc.calllog import scrub_body
from services.kyc.objectstore import UNSIGNED, Credentials, sign

AWS = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = datetime(2013, 5, 24, tzinfo=UTC)
EMPTY_SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_header_signature_matches_aws_example() -> None:
    # "Example: GET Object" in the S3 SigV4 header-auth documentation.
    headers = {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA,
        "x-amz-date": "20130524T000000Z",
    }
    got = sign("GET", "/test.txt", {}, headers, EMPTY_SHA, AWS, WHEN)
    assert got == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_presigned_signature_matches_aws_example() -> None:
    # "Example: presigned URL" in the S3 SigV4 query-auth documentation.
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        "X-Amz-Date": "20130524T000000Z",
        "X-Amz-Expires": "86400",
        "X-Amz-SignedHeaders": "host",
    }
    got = sign(
        "GET", "/test.txt", query, {"host": "examplebucket.s3.amazonaws.com"}, UNSIGNED, AWS, WHEN
    )
    assert got == "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"


def test_portuguese_pii_is_scrubbed_from_call_records() -> None:
    body = json.dumps(
        {
            "cpf": "[REDACTED]",
            "nome": "ANA BEATRIZ SOUZA LIMA",
            "data_nascimento": "1988-03-14",
            "documento": {"tipo": "CNH", "numero": "02650306461"},
            "situacao": "REGULAR",
        }
    )
    scrubbed = scrub_body(body)
    assert scrubbed is not None
    for secret in ("ANA BEATRIZ", "1988-03-14", "02650306461"):
        assert secret not in scrubbed
    assert json.loads(scrubbed)["situacao"] == "REGULAR"
    # A body cut short by the size cap is not JSON: scrubbed by pattern.
    cut = scrub_body('{"nome": "ANA BEATRIZ SOUZA LIMA", "data_nascimento": "1988-0')
    assert cut is not None and "ANA" not in cut and "1988" not in cut

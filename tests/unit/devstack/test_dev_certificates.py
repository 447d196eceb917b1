"""The dev server certificate: its names, and re-issue when one is missing."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509

from devstack import devsecrets
from devstack.devsecrets import SERVER_DNS_NAMES, ensure_secrets


def names_of(pem: bytes) -> tuple[set[str], set[str]]:
    san = (
        x509.load_pem_x509_certificate(pem)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    return set(san.get_values_for_type(x509.DNSName)), {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def test_the_certificate_names_the_edge_in_every_way_it_is_reached(tmp_path: Path) -> None:
    s = ensure_secrets(tmp_path)
    dns, ips = names_of(s.server_cert.read_bytes())
    assert dns == {"localhost", "envoy"}  # "envoy": compose's containers reach the edge so
    assert ips == {"127.0.0.1", str(ipaddress.ip_address("::1"))}
    # The CA signed it: the chain a client checks.
    ca = x509.load_pem_x509_certificate(s.ca_cert.read_bytes())
    x509.load_pem_x509_certificate(s.server_cert.read_bytes()).verify_directly_issued_by(ca)


def test_a_fresh_certificate_is_kept_and_one_missing_a_name_is_issued_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = ensure_secrets(tmp_path)
    first = s.server_cert.read_bytes()
    assert ensure_secrets(tmp_path).server_cert.read_bytes() == first  # kept
    # A certificate from before "envoy" was added: same CA, only localhost.
    with monkeypatch.context() as m:
        m.setattr(devsecrets, "SERVER_DNS_NAMES", ("localhost",))
        s.server_cert.unlink()
        ensure_secrets(tmp_path)
    assert names_of(s.server_cert.read_bytes())[0] == {"localhost"}
    ensure_secrets(tmp_path)
    assert names_of(s.server_cert.read_bytes())[0] == set(SERVER_DNS_NAMES)

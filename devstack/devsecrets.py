"""Dev secrets, generated once per state dir into `<state>/secrets/` (mode 0600).

Never committed (`.state/` is git-ignored) and never reused across machines. Each
file is created only when missing, so restarts keep tokens, encrypted PII and DB
roles valid. Files (FINTECH_SECRETS_DIR):

- `ca.pem`, `ca_key.pem`: dev CA; `server.pem`, `server_key.pem`: Envoy's
  certificate (SAN localhost, envoy, 127.0.0.1, ::1), re-issued when close to expiry.
- `jwt_signing_key.pem` (ES256, PKCS#8) and `jwks.json` (its public key,
  `kid` = RFC 7638 thumbprint): identity signs access tokens, Envoy and every
  service verify them.
  services.platform.service_token signs service-to-service tokens (role
  `service`) with this same key, so no separate service key is generated.
- `pii_keys.json`: {"active": "k1", "keys": {"k1": b64(32 bytes)}, "hash_key": b64(32 bytes)}.
- `db_passwords.json`: {"<service>": password, ...} for the `<svc>_svc` roles.
- `postgres_admin_password`: the admin (superuser `postgres`) password.
- `s3_credentials.json`: {"access_key_id", "secret_access_key"} (SeaweedFS identity).
- `webhook_hmac_secret`: base64 of 32 bytes, the PSP webhook HMAC key.
- `provider_clients.json`: {"<provider>": {"client_id", "client_secret"}} for
  the OAuth2 client-credentials providers (psp, govdocs): the service reads
  it from here, the simulator gets the same pair from devstack at start-up,
  so no credential lives in the code.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.topology import SERVICES

CA_VALIDITY_DAYS = 3650
# OAuth2 client-credentials providers and the client id we are known by there.
OAUTH_PROVIDERS: dict[str, str] = {"psp": "fintech-payments", "govdocs": "fintech-kyc"}
SERVER_CERT_VALIDITY_DAYS = 365
RENEW_BEFORE = dt.timedelta(days=7)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600 (tmp file + rename, never world-readable)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _token() -> str:
    return secrets.token_urlsafe(32)


def _ec_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def jwk_for(key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    """The public JWK with `kid` = RFC 7638 thumbprint (SHA-256 of the canonical members)."""
    numbers = key.public_numbers()
    size = (key.curve.key_size + 7) // 8
    required = {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64url(numbers.x.to_bytes(size, "big")),
        "y": _b64url(numbers.y.to_bytes(size, "big")),
    }
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64url(hashlib.sha256(canonical).digest())
    return {**required, "kid": kid, "alg": "ES256", "use": "sig"}


@dataclass(frozen=True)
class Secrets:
    dir: Path

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server_key.pem"

    @property
    def jwt_signing_key(self) -> Path:
        return self.dir / "jwt_signing_key.pem"

    @property
    def jwks(self) -> Path:
        return self.dir / "jwks.json"

    @property
    def jwt_kid(self) -> str:
        return str(json.loads(self.jwks.read_text())["keys"][0]["kid"])

    @property
    def pii_keys(self) -> Path:
        return self.dir / "pii_keys.json"

    @property
    def s3_credentials(self) -> dict[str, str]:
        data: dict[str, str] = json.loads((self.dir / "s3_credentials.json").read_text())
        return data

    @property
    def postgres_admin_password(self) -> str:
        return (self.dir / "postgres_admin_password").read_text().strip()

    def db_password(self, service: str) -> str:
        passwords: dict[str, str] = json.loads((self.dir / "db_passwords.json").read_text())
        return passwords[service]


def _ensure_ec_key_and_jwks(key_path: Path, jwks_path: Path) -> None:
    if not key_path.exists():
        _write_private(key_path, _ec_key_pem(ec.generate_private_key(ec.SECP256R1())))
    if not jwks_path.exists():
        jwk = jwk_for(_load_ec_key(key_path).public_key())
        _write_private(jwks_path, json.dumps({"keys": [jwk]}, indent=2).encode())


def _ensure_ca(s: Secrets) -> None:
    key_path = s.dir / "ca_key.pem"
    if key_path.exists() and s.ca_cert.exists():
        return
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fintech dev CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _ec_key_pem(key))
    _write_private(s.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
    # A new CA invalidates any server certificate issued by the old one.
    s.server_cert.unlink(missing_ok=True)


def _server_cert_fresh(s: Secrets) -> bool:
    if not (s.server_cert.exists() and s.server_key.exists()):
        return False
    cert = x509.load_pem_x509_certificate(s.server_cert.read_bytes())
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    if not set(SERVER_DNS_NAMES) <= set(names.get_values_for_type(x509.DNSName)):
        return False  # issued before a name was added: issue again
    return cert.not_valid_after_utc - dt.datetime.now(dt.UTC) > RENEW_BEFORE


# "envoy": in compose, containers (the PSP simulator's webhooks) reach the
# edge by its service name, and TLS checks that name.
SERVER_DNS_NAMES = ("localhost", "envoy")


def _ensure_server_cert(s: Secrets) -> None:
    if _server_cert_fresh(s):
        return
    ca_key = _load_ec_key(s.dir / "ca_key.pem")
    ca_cert = x509.load_pem_x509_certificate(s.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    san = x509.SubjectAlternativeName(
        [
            *(x509.DNSName(name) for name in SERVER_DNS_NAMES),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_CERT_VALIDITY_DAYS))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(s.server_key, _ec_key_pem(key))
    _write_private(s.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def _ensure_json(path: Path, make: dict[str, object]) -> None:
    if not path.exists():
        _write_private(path, json.dumps(make, indent=2).encode())


def _ensure_text(path: Path, value: str) -> None:
    if not path.exists():
        _write_private(path, (value + "\n").encode())


def ensure_secrets(directory: Path) -> Secrets:
    """Create whatever is missing in `directory`; return accessors for all of it."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    s = Secrets(directory)
    _ensure_ca(s)
    _ensure_server_cert(s)
    _ensure_ec_key_and_jwks(s.jwt_signing_key, s.jwks)
    _ensure_json(
        s.pii_keys,
        {
            "active": "k1",
            "keys": {"k1": base64.b64encode(secrets.token_bytes(32)).decode()},
            "hash_key": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
    )
    passwords_path = directory / "db_passwords.json"
    passwords: dict[str, str] = (
        json.loads(passwords_path.read_text()) if passwords_path.exists() else {}
    )
    # A service added later gets its password without changing the others'.
    if any(svc not in passwords for svc in SERVICES):
        for svc in SERVICES:
            passwords.setdefault(svc, _token())
        _write_private(passwords_path, json.dumps(passwords, indent=2).encode())
    _ensure_text(directory / "postgres_admin_password", _token())
    _ensure_json(
        directory / "s3_credentials.json",
        {"access_key_id": "dev" + secrets.token_hex(8), "secret_access_key": _token()},
    )
    _ensure_text(
        directory / "webhook_hmac_secret", base64.b64encode(secrets.token_bytes(32)).decode()
    )
    clients_path = directory / "provider_clients.json"
    clients: dict[str, dict[str, str]] = (
        json.loads(clients_path.read_text()) if clients_path.exists() else {}
    )
    if any(name not in clients for name in OAUTH_PROVIDERS):
        for name, client_id in OAUTH_PROVIDERS.items():
            clients.setdefault(name, {"client_id": client_id, "client_secret": _token()})
        _write_private(clients_path, json.dumps(clients, indent=2).encode())
    return s


def provider_client(secrets_dir: Path, provider: str) -> tuple[str, str]:
    """(client_id, client_secret) of an OAuth2 provider, from provider_clients.json."""
    entry = json.loads((secrets_dir / "provider_clients.json").read_text())[provider]
    return str(entry["client_id"]), str(entry["client_secret"])

"""Certificates and keys for the local control plane.

Everything is throw-away test material: one CA, short-lived leaf certificates (EC P-256, fast to
generate), and the RSA key the API server signs service-account tokens with. Every certificate carries
what a strict verifier asks for (key identifiers, key usage): Python 3.13's default TLS context sets
``VERIFY_X509_STRICT`` and refuses a chain whose leaf has no Authority Key Identifier.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=30)
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class KeyPair:
    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, name: str) -> tuple[Path, Path]:
        """Write `<name>.crt` and `<name>.key`; returns both paths."""
        crt, key = directory / f"{name}.crt", directory / f"{name}.key"
        crt.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        key.chmod(0o600)
        return crt, key


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, orgs: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in orgs]
    return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key, validity: dt.timedelta = VALIDITY
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
    )


_KEY_USES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


def _key_usage(*uses: str) -> x509.KeyUsage:
    """A KeyUsage allowing only ``uses`` (the constructor takes all nine flags)."""
    assert set(uses) <= set(_KEY_USES), uses
    return x509.KeyUsage(**{name: name in uses for name in _KEY_USES})


_CA_USAGE = _key_usage("digital_signature", "key_cert_sign", "crl_sign")


def _leaf_builder(
    subject: x509.Name, issuer: x509.Name, public_key, issuer_key, validity: dt.timedelta = VALIDITY
) -> x509.CertificateBuilder:
    """A leaf certificate's builder: not a CA, its key's use, both key identifiers (names and EKU left to add)."""
    uses = (
        ("digital_signature", "key_encipherment")
        if isinstance(public_key, rsa.RSAPublicKey)
        else ("digital_signature",)
    )
    return (
        _builder(subject, issuer, public_key, validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(*uses), critical=True)  # key encipherment: RSA key exchange (TLS 1.2) only
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


@dataclass(frozen=True)
class CertificateAuthority:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, common_name: str = "odin-local-ca") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(common_name)
        cert = (
            _builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_CA_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load(cls, directory: Path, name: str) -> CertificateAuthority:
        """The CA written by ``pair.write(directory, name)``."""
        cert = x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / f"{name}.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cls(cert, key)

    @property
    def pair(self) -> KeyPair:
        return KeyPair(self.cert.public_bytes(serialization.Encoding.PEM), _key_pem(self.key))

    def issue_server(self, common_name: str) -> KeyPair:
        """A serving certificate valid for the loopback names only."""
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in LOOPBACK_NAMES]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in LOOPBACK_IPS]
        return self._issue(
            _name(common_name),
            ExtendedKeyUsageOID.SERVER_AUTH,
            x509.SubjectAlternativeName(sans),
        )

    def issue_client(self, common_name: str, orgs: tuple[str, ...] = ()) -> KeyPair:
        """A client certificate: CN is the Kubernetes user name, O the groups."""
        return self._issue(_name(common_name, orgs), ExtendedKeyUsageOID.CLIENT_AUTH)

    def _issue(self, subject: x509.Name, usage, sans=None) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _leaf_builder(subject, self.cert.subject, key.public_key(), self.cert.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if sans is not None:
            builder = builder.add_extension(sans, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return KeyPair(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def webhook_pair(
    *, ca_name: str, dns_name: str, ips: tuple[str, ...], validity: dt.timedelta
) -> tuple[KeyPair, KeyPair]:
    """A CA and a serving certificate in the shape cert-controller's rotator accepts (the training operator's):
    RSA keys, the CA key in PKCS#1, the CA valid for the DNS name ``ca_name`` and the server for ``dns_name`` and
    ``ips``. ``validity`` must exceed the rotator's 90-day look-ahead, or it replaces them with its own."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_subject = _name(ca_name, ("training-operator",))
    ca_cert = (
        _builder(ca_subject, ca_subject, ca_key.public_key(), validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage("digital_signature", "key_encipherment", "key_cert_sign", "crl_sign"), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(ca_name)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans: list[x509.GeneralName] = [x509.DNSName(dns_name)]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    cert = (
        _leaf_builder(_name(dns_name), ca_subject, key.public_key(), ca_key.public_key(), validity)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pkcs1 = ca_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    pem = serialization.Encoding.PEM
    return KeyPair(ca_cert.public_bytes(pem), pkcs1), KeyPair(cert.public_bytes(pem), _key_pem(key))


def service_account_key() -> KeyPair:
    """RSA key pair for service-account tokens (`cert_pem` holds the public key)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(public, _key_pem(key))

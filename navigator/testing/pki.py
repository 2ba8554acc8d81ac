"""Throwaway certificates for TLS and mTLS tests: a CA, a 127.0.0.1/localhost server cert, client certs.

Needs the ``cryptography`` package (a test dependency)::

    pki = Pki.create(tmp_path)
    manager tls: {cert_file: pki.server_cert, key_file: pki.server_key, client_ca_file: pki.ca}
    cert, key = pki.client("edge-east")        # CN and DNS SAN "edge-east"
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def _leaf(
    directory: Path, name: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, client: bool
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now())
        .not_valid_after(_now() + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    sans: list[x509.GeneralName]
    if client:
        usage, sans = ExtendedKeyUsageOID.CLIENT_AUTH, [x509.DNSName(name)]
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH
        sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = (
        builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Pki:
    directory: Path
    ca: Path
    server_cert: Path
    server_key: Path
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    @classmethod
    def create(cls, directory: Path, name: str = "navigator-test-ca") -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now())
            .not_valid_after(_now() + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        ca_path = directory / f"{name}.crt"
        ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert, key = _leaf(directory, "server", ca_key, ca, client=False)
        return cls(directory, ca_path, cert, key, ca_key, ca)

    def client(self, name: str) -> tuple[Path, Path]:
        """(cert, key) of a client certificate with common name and DNS SAN ``name``, signed by this CA."""
        return _leaf(self.directory, name, self.ca_key, self.ca_cert, client=True)

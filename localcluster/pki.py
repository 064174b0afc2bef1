"""A throwaway PKI for one cluster: CA, serving and client certificates, kubeconfigs.

Client certificates name the user in CN and its groups in O, as kube-apiserver reads them.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Identity:
    """One certificate to issue: a client (user + groups) or a server (with SANs)."""

    name: str
    common_name: str
    groups: tuple[str, ...] = ()
    server_ips: tuple[str, ...] = ()
    server_dns: tuple[str, ...] = field(default=())

    @property
    def server(self) -> bool:
        return bool(self.server_ips or self.server_dns)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key: rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _builder(
    subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
    )


def _ca(name: x509.Name, key: rsa.RSAPrivateKey) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    return (
        _builder(name, key, name)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    ident: Identity, key: rsa.RSAPrivateKey, ca_name: x509.Name, ca_key: rsa.RSAPrivateKey
) -> x509.Certificate:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in ident.groups]
    subject = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, ident.common_name)])
    builder = _builder(subject, key, ca_name).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if ident.server:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in ident.server_dns]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ident.server_ips]
        builder = builder.add_extension(
            x509.SubjectAlternativeName(sans), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(ca_key, hashes.SHA256())


def write_pki(pki: Path, identities: list[Identity]) -> None:
    """A CA, one certificate per identity (``<name>.crt/.key``) and the ServiceAccount key pair."""
    pki.mkdir(parents=True, exist_ok=True)
    ca_key, sa_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phoenixtwin-test-ca")])
    ca = _ca(ca_name, ca_key)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(pki / "ca.key", ca_key)
    for ident in identities:
        key = _key()
        cert = _leaf(ident, key, ca_name, ca_key)
        (pki / f"{ident.name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{ident.name}.key", key)
    _write_key(pki / "sa.key", sa_key)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def control_plane_identities(server_ips: list[str], server_dns: list[str]) -> list[Identity]:
    return [
        Identity(
            "apiserver",
            "kube-apiserver",
            server_ips=("127.0.0.1", *server_ips),
            server_dns=("localhost", *server_dns),
        ),
        Identity("admin", "admin", groups=("system:masters",)),
    ]


def kubeconfig_text(server: str, pki: Path, user: str = "admin") -> str:
    """A kubeconfig for ``user`` (its ``<user>.crt/.key`` in ``pki``) against ``server``."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "phoenix-local",
                    "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
                }
            ],
            "users": [
                {
                    "name": user,
                    "user": {
                        "client-certificate": str(pki / f"{user}.crt"),
                        "client-key": str(pki / f"{user}.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "phoenix-local", "context": {"cluster": "phoenix-local", "user": user}}
            ],
            "current-context": "phoenix-local",
        },
        indent=2,
    )


def write_kubeconfig(path: Path, server: str, pki: Path, user: str = "admin") -> None:
    path.write_text(kubeconfig_text(server, pki, user))
    path.chmod(0o600)

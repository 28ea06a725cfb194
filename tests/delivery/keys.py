"""Throw-away DKIM keys for tests and the DNS answer dkim.verify should see for them."""
from __future__ import annotations

import base64
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_ED = ed25519.Ed25519PrivateKey.generate()


def write_keys(directory: Path, domain: str = "example.com") -> tuple[list[dict], dict[bytes, bytes]]:
    """([[dkim.keys]] entries, {dns name: TXT record}) for an RSA and an Ed25519 key."""
    directory.mkdir(parents=True, exist_ok=True)
    rsa_path, ed_path = directory / "rsa.pem", directory / "ed.pem"
    pkcs8 = serialization.PrivateFormat.PKCS8
    none = serialization.NoEncryption()
    rsa_path.write_bytes(_RSA.private_bytes(serialization.Encoding.PEM, pkcs8, none))
    ed_path.write_bytes(_ED.private_bytes(serialization.Encoding.PEM, pkcs8, none))
    for path in (rsa_path, ed_path):
        path.chmod(0o600)
    spki = _RSA.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    raw = _ED.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    records = {
        f"ak1._domainkey.{domain}.".encode(): b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki),
        f"ak2._domainkey.{domain}.".encode(): b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw),
    }
    entries = [
        {"domain": domain, "selector": "ak1", "key_file": str(rsa_path), "algorithm": "rsa-sha256"},
        {"domain": domain, "selector": "ak2", "key_file": str(ed_path),
         "algorithm": "ed25519-sha256"},
    ]
    return entries, records


def dns(records: dict[bytes, bytes]):
    """A dnsfunc for dkim.verify answering from `records`."""
    def lookup(name, timeout=5):
        return records.get(name if name.endswith(b".") else name + b".")
    return lookup

"""DKIM keys: generate them, derive the public TXT record, compare with what DNS publishes.

Used by `altkraft-install dkim generate`, the DNS checks (CLI and Deliverability page) and
the signer. RSA keys publish the SubjectPublicKeyInfo (RFC 6376 p=); Ed25519 keys publish
the raw 32-byte key (RFC 8463).
"""
from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ALGORITHMS = {"rsa-sha256": "rsa", "ed25519-sha256": "ed25519"}
TXT_CHUNK = 255   # one DNS character-string holds at most 255 bytes


class DkimKeyError(Exception):
    """The key file is missing, unreadable or not a usable private key."""


@dataclass(frozen=True)
class PublicKey:
    k: str          # "rsa" or "ed25519"
    p: str          # base64, as published in p=

    @property
    def txt(self) -> str:
        return f"v=DKIM1; k={self.k}; p={self.p}"


def generate_private_pem(algorithm: str = "rsa-sha256", bits: int = 2048) -> bytes:
    """A fresh private key as unencrypted PKCS#8 PEM."""
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}: use {' or '.join(ALGORITHMS)}")
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private(pem: bytes, *, validate: bool = True):
    """The private key. `validate=False` skips OpenSSL's RSA consistency check (about 0.2 s
    of CPU a key): enough to read the public half for a DNS record; signing
    (delivery.dkim.load_key) always validates."""
    try:
        key = serialization.load_pem_private_key(pem, password=None,
                                                 unsafe_skip_rsa_key_validation=not validate)
    except (ValueError, TypeError) as exc:
        raise DkimKeyError(f"not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise DkimKeyError("DKIM keys must be RSA or Ed25519")
    return key


# A private key readable by anyone but its owner is refused: whoever reads it can sign as the
# domain. Only the owner's bits may be set (0600 or 0400).
OTHERS = 0o077


def read_key_file(path: str | os.PathLike) -> bytes:
    """The key file's bytes; DkimKeyError names the path (and the fix, for its mode)."""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise DkimKeyError(f"key file {path} is a directory")
        mode = stat.S_IMODE(info.st_mode)
        if mode & OTHERS:
            raise DkimKeyError(f"key file {path} has mode {mode:04o}: others may read it. "
                               f"Fix: chmod 600 {path} (owned by the service user)")
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DkimKeyError(f"key file {path} does not exist") from None
    except PermissionError:
        raise DkimKeyError(f"key file {path} is not readable by this user") from None
    except OSError as exc:
        raise DkimKeyError(f"key file {path}: {exc.strerror or exc}") from None


def public_key(pem: bytes) -> PublicKey:
    """The p= value (and k=) for a private key."""
    key = load_private(pem, validate=False).public_key()
    if isinstance(key, ed25519.Ed25519PublicKey):
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return PublicKey("ed25519", base64.b64encode(raw).decode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return PublicKey("rsa", base64.b64encode(der).decode())


def split_txt(value: str, size: int = TXT_CHUNK) -> list[str]:
    """The TXT value as character-strings of at most `size` bytes (resolvers join them)."""
    data = value.encode("ascii")
    return [data[i:i + size].decode("ascii") for i in range(0, len(data), size)] or [""]


def zone_line(name: str, value: str) -> str:
    """A zone-file line publishing `value` as TXT at `name`, split into 255-byte strings."""
    parts = split_txt(value)
    quoted = " ".join(f'"{part}"' for part in parts)
    return f"{name}. IN TXT {quoted}" if len(parts) == 1 else f"{name}. IN TXT ( {quoted} )"


def record_name(domain: str, selector: str) -> str:
    return f"{selector}._domainkey.{domain}"


def parse_tags(text: str) -> dict[str, str]:
    """tag=value; pairs of a DKIM or DMARC record (keys lower-cased, whitespace dropped)."""
    tags: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = "".join(value.split())
    return tags


def write_private_key(path: Path, pem: bytes) -> None:
    """Writes a new key file with mode 0600 (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)

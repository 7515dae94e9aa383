"""The signing chain for C2PA manifests: a local one for development, or production files.

``visuels keys init`` makes a root CA, an intermediate CA and a signing (leaf) certificate, as
c2pa accepts them: ES256 keys; the leaf with CA:false, a critical digitalSignature key usage, the
emailProtection extended key usage, and subject/authority key identifiers. The chain file holds
the leaf then the intermediate (never the root); the root is the trust anchor for readers.
Production deployments put their own ``signer.key``, ``chain.pem`` and ``trust-anchors.pem`` in
the folder instead, and may set a timestamp authority with ``VISUELS_TSA_URL``. The same folder
holds the watermark key ring (``visuels.marking.watermark_keys``), made beside the chain.
"""

from __future__ import annotations

import datetime
import os
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from visuels._internal.atomic import staged, write_bytes_atomic
from visuels.config import settings
from visuels.errors import OperationalError, VisuelsError
from visuels.marking.watermark_keys import WatermarkKey, active_key, first_key, keys_folder_alone, ring

SIGNER_KEY = "signer.key"
CHAIN = "chain.pem"
TRUST_ANCHORS = "trust-anchors.pem"
ROOT_KEY = "root-ca.key"
INTERMEDIATE_KEY = "intermediate-ca.key"
DETECTOR_KEY = "detector.key"  # signs `visuels detect`'s results: the detector's word, not the region's C2PA signer


class SigningError(VisuelsError):
    """Signing keys or certificates are missing or unusable."""


class TimeStampError(OperationalError):
    """The time-stamp authority gave no time-stamp (out of reach, or answering an error): the
    environment failed, not the picture or the keys."""


@dataclass(frozen=True)
class SigningFiles:
    private_key: Path
    chain: Path
    trust_anchors: Path
    tsa_url: str | None
    watermark: WatermarkKey  # the key that marks new pictures


def keys_dir() -> Path:
    """``$VISUELS_KEYS_DIR``, else ``./keys`` (git-ignored)."""
    return settings().keys_dir


def signing_files(folder: Path | None = None, *, to_sign: bool = True) -> SigningFiles:
    """The signing files and the watermark key in ``folder``; a clear error if one is missing or,
    ``to_sign``, if its key cannot sign with its chain today: said before any picture is made,
    not at the first one's signature. Reading old signatures needs only the certificates."""
    folder = folder or keys_dir()
    require_signing_files(folder)
    if to_sign:
        signer_certificate(folder)
    return SigningFiles(
        private_key=folder / SIGNER_KEY,
        chain=folder / CHAIN,
        trust_anchors=folder / TRUST_ANCHORS,
        tsa_url=settings().tsa_url or None,
        watermark=active_key(folder),
    )


def require_signing_files(folder: Path) -> None:
    """The key, chain and trust anchors are in ``folder``; else a ``SigningError`` naming the first
    missing one, and what to do (`keys init` makes a chain, but never over a key that is there)."""
    for path in (folder / SIGNER_KEY, folder / CHAIN, folder / TRUST_ANCHORS):
        if not path.is_file() and (folder / SIGNER_KEY).is_file():
            raise SigningError(
                path,
                None,
                "signing file not found beside signer.key: put it back from where the key came from"
                " (development keys: move this folder aside and run `visuels keys init`)",
            )
        if not path.is_file():
            raise SigningError(path, None, "signing file not found: run `visuels keys init` (or set VISUELS_KEYS_DIR)")


def read_private_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The ES256 (EC P-256) private key in ``path``, unencrypted PEM: the one kind C2PA signs with here."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:  # cryptography's word for a key that needs a password
        raise SigningError(path, None, "the key is protected by a password: give it unencrypted, mode 0600") from None
    except (ValueError, UnsupportedAlgorithm):
        raise SigningError(path, None, "not a private key in PEM form") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SigningError(path, None, "not an EC P-256 key: C2PA manifests are signed here with ES256")
    return key


def read_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates in ``path`` (PEM), at least one."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError:  # no certificate, or a damaged one
        raise SigningError(path, None, "holds no certificate in PEM form") from None


def signer_certificate(folder: Path) -> x509.Certificate:
    """The signer's certificate in ``folder``, once its key and chain are found to sign now: the
    chain starts with the key's own certificate, valid today, and the trust anchors are readable."""
    key_file, chain_file = folder / SIGNER_KEY, folder / CHAIN
    key = read_private_key(key_file)
    leaf = read_certificates(chain_file)[0]
    read_certificates(folder / TRUST_ANCHORS)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise SigningError(
            chain_file,
            None,
            "its first certificate is not {key}'s: the chain starts with the signer's certificate, then its issuers",
            key=key_file.name,
        )
    now = datetime.datetime.now(datetime.UTC)
    if now < leaf.not_valid_before_utc:
        raise SigningError(
            chain_file,
            None,
            "the signer's certificate is valid only from {start:%Y-%m-%d %H:%M} UTC: check this machine's clock",
            start=leaf.not_valid_before_utc,
        )
    if now > leaf.not_valid_after_utc:
        raise SigningError(
            chain_file,
            None,
            "the signer's certificate expired on {end:%Y-%m-%d}: sign with a renewed one (docs/compliance.md, Keys)",
            end=leaf.not_valid_after_utc,
        )
    return leaf


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca_path_length: int | None,
    days: int,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    is_ca = ca_path_length is not None or subject == issuer
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    )
    if is_ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # certs, CRLs
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # signatures
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return builder.add_extension(usage, critical=True).sign(issuer_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    write_bytes_atomic(path, pem, mode=0o600)  # never readable by others, not even for a moment


DEVELOPMENT_ORGANISATION = "visuels (local development)"  # the organisation of `visuels keys init`'s chain


def init_local_chain(folder: Path, organisation: str = DEVELOPMENT_ORGANISATION) -> SigningFiles:
    """Create root, intermediate and signer keys and certificates in ``folder`` (keys mode 0600),
    and a first watermark key unless the folder has one."""
    with keys_folder_alone(folder):
        return _make_chain(folder, organisation)


def ensure_local_chain(folder: Path) -> bool:
    """Make a local chain and a watermark key in ``folder`` unless they are there (for trials: the
    demo, a first `make serve`); True if the chain was made. Production signs with its own
    certificate (`visuels keys init` explains)."""
    if (folder / SIGNER_KEY).exists() and ring(folder):
        return False  # nothing to make: no lock (a deployment's keys folder may be read-only)
    with keys_folder_alone(folder):  # another process may be making them now: found once it has
        if (folder / SIGNER_KEY).exists():
            first_key(folder)  # a folder from before watermark keys had ids
            return False
        _make_chain(folder, DEVELOPMENT_ORGANISATION)
        return True


def _make_chain(folder: Path, organisation: str) -> SigningFiles:
    """``init_local_chain`` for a caller holding ``keys_folder_alone``."""
    if (folder / SIGNER_KEY).exists():
        raise SigningError(
            folder / SIGNER_KEY,
            None,
            "a signing key already exists here; not overwritten (for a new chain, move this folder aside first)",
        )
    folder.chmod(0o700)
    first_key(folder)
    root_key, intermediate_key, signer_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root_name = _name("visuels local root CA", organisation)
    intermediate_name = _name("visuels local intermediate CA", organisation)
    root = _certificate(root_name, root_key.public_key(), root_name, root_key, 1, days=3650)
    intermediate = _certificate(intermediate_name, intermediate_key.public_key(), root_name, root_key, 0, days=1825)
    signer = _certificate(
        _name("visuels signer", organisation), signer_key.public_key(), intermediate_name, intermediate_key, None, 365
    )
    _write_key(folder / ROOT_KEY, root_key)
    _write_key(folder / INTERMEDIATE_KEY, intermediate_key)
    pem = serialization.Encoding.PEM
    write_bytes_atomic(folder / CHAIN, signer.public_bytes(pem) + intermediate.public_bytes(pem))
    write_bytes_atomic(folder / TRUST_ANCHORS, root.public_bytes(pem))
    # The signer's key last: its presence says the chain is complete, so a run of this killed
    # before it is simply run again (a key without its chain could not sign, and is never replaced).
    _write_key(folder / SIGNER_KEY, signer_key)
    return signing_files(folder)


def detector_key(folder: Path | None = None) -> ec.EllipticCurvePrivateKey:
    """The key that signs detection results, in ``folder`` (the keys folder): made on first use
    (0600), once even when two detectors start at the same moment, then kept: its public half is
    what the public checks results against."""
    path = (folder or keys_dir()) / DETECTOR_KEY
    if not path.is_file():
        key = ec.generate_private_key(ec.SECP256R1())
        with staged(path, mode=0o600) as file:  # its temporary is removed whatever happens
            _write_key(file.path, key)
            with suppress(FileExistsError):  # another detector made one meanwhile: that one is kept
                os.link(file.path, path)
    return read_private_key(path)

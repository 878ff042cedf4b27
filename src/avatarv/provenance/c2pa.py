"""Content credentials: a C2PA manifest, signed with a key the server generates, stating that the video
was made by a generative model (``c2pa.created`` with ``digitalSourceType`` trainedAlgorithmicMedia,
the IPTC term the C2PA spec (§ "Actions") uses for AI-generated media).

``generate_key(dir)`` makes a private ES256 root CA and an end-entity signing certificate under it
(``cryptography``): C2PA validators reject a self-signed leaf, and want ``digitalSignature`` key usage
and an extended key usage such as ``emailProtection``; the chain is ``signer.pem`` = leaf + root.
Without a timestamp authority (no network) the signature carries no trusted time, and since the root is
our own a reader reports the manifest as valid in structure but the signer as untrusted: that is what a
self-issued key can say. c2pa-python 0.38.1 (c2pa-rs 0.91) signs our fragmented MP4 as it is (measured:
validation state Valid); ``sign_mp4`` still remuxes an fMP4 to a regular one first (``rewrite_mp4``,
-c copy, moov first) so the delivered file plays everywhere, and signs that.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from avatarv.errors import InputError

KEY_FILE, CERT_FILE = "signer.key", "signer.pem"
AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CLAIM_GENERATOR = "avatarv"


def generate_key(key_dir: str | Path, common_name: str = "avatarv content credentials",
                 days: int = 3650) -> Path:
    """Write ``signer.key`` (ES256 private key, PKCS#8 PEM, mode 600) and ``signer.pem`` (leaf cert + root
    CA cert) into ``key_dir``; returns the folder. Existing files are replaced."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key_dir = Path(key_dir)
    key_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "avatarv")])

    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (x509.CertificateBuilder().subject_name(name(f"{common_name} root")).issuer_name(name(f"{common_name} root"))
            .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(root.subject)
            .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
            .sign(root_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    key_path = key_dir / KEY_FILE
    key_path.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    (key_dir / CERT_FILE).write_bytes(leaf.public_bytes(pem) + root.public_bytes(pem))
    return key_dir


def ai_generated_manifest(claim: dict | None = None) -> dict:
    """The manifest definition: title/format + a ``c2pa.actions`` assertion saying the video was created by
    a trained model; ``claim`` entries are merged in (``title``, extra ``assertions``, ``software_agent``...)."""
    claim = dict(claim or {})
    agent = claim.pop("software_agent", "avatarv generate")
    extra = claim.pop("assertions", [])
    manifest = {
        "claim_generator_info": [{"name": CLAIM_GENERATOR}],
        "title": claim.pop("title", "avatarv output"),
        "format": "video/mp4",
        "assertions": [{
            "label": "c2pa.actions",
            "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI_SOURCE_TYPE,
                                  "softwareAgent": {"name": agent}}]},
        }, *extra],
    }
    manifest.update(claim)
    return manifest


def _signer(key_dir: Path):
    import c2pa

    key_path, cert_path = key_dir / KEY_FILE, key_dir / CERT_FILE
    for p in (key_path, cert_path):
        if not p.is_file():
            raise InputError(f"no {p.name} (make one with avatarv.provenance.c2pa.generate_key)", key_dir)
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, cert_path.read_bytes(), key_path.read_bytes(), None)
    return c2pa.Signer.from_info(info)


def is_fragmented(path: str | Path) -> bool:
    """True if the mp4 has a ``moof`` box among its top-level boxes (fragmented MP4)."""
    with open(path, "rb") as f:
        while True:
            header = f.read(8)
            if len(header) < 8:
                return False
            size, kind = int.from_bytes(header[:4], "big"), header[4:]
            if kind == b"moof":
                return True
            if size == 1:
                size = int.from_bytes(f.read(8), "big") - 8
            elif size == 0:
                return False
            f.seek(size - 8, os.SEEK_CUR)


def sign_mp4(src: str | Path, dst: str | Path, key_dir: str | Path, claim: dict | None = None) -> Path:
    """Embed a signed manifest (``ai_generated_manifest(claim)``) into a copy of ``src`` at ``dst`` (may be
    ``src``), atomically. A fragmented mp4 is remuxed to a regular one first."""
    import c2pa

    from avatarv.media.container import check_file
    from avatarv.media.write import temp_path_for
    from avatarv.provenance.mp4io import rewrite_mp4

    src, dst, key_dir = check_file(src), Path(dst), Path(key_dir)
    signer = _signer(key_dir)
    dst.parent.mkdir(parents=True, exist_ok=True)
    plain = temp_path_for(dst).with_suffix(".plain.mp4")  # the remuxed fMP4 (rewrite_mp4 wants .mp4)
    tmp = temp_path_for(dst)
    try:
        if is_fragmented(src):
            rewrite_mp4(src, plain, {})
            source = plain
        else:
            source = src
        builder = c2pa.Builder(json.dumps(ai_generated_manifest(claim)))
        with open(source, "rb") as fin, open(tmp, "wb") as fout:
            builder.sign(signer, "video/mp4", fin, fout)
        os.replace(tmp, dst)
    except c2pa.C2paError as err:
        raise InputError(f"C2PA signing failed: {err}", src) from None
    finally:
        plain.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
    return dst


def read_manifest(path: str | Path) -> dict | None:
    """The active manifest of ``path`` as a dict, plus ``validation_state`` and ``ai_generated`` (True if a
    ``c2pa.actions`` action has the trainedAlgorithmicMedia source type); None when it has no manifest."""
    import c2pa

    from avatarv.media.container import check_file

    path = check_file(path)
    try:
        with open(path, "rb") as f:
            reader = c2pa.Reader("video/mp4", f)
            manifest = reader.get_active_manifest()
            state = reader.get_validation_state()
            results = reader.get_validation_results()
    except c2pa.C2paError as err:
        if "ManifestNotFound" in type(err).__name__ or "no JUMBF" in str(err) or "not found" in str(err).lower():
            return None
        raise InputError(f"unreadable C2PA manifest: {err}", path) from None
    if manifest is None:
        return None
    actions = [a for x in manifest.get("assertions", []) if str(x.get("label", "")).startswith("c2pa.actions")
               for a in x.get("data", {}).get("actions", [])]
    return {**manifest, "validation_state": state, "validation_results": results,
            "ai_generated": any(a.get("digitalSourceType") == AI_SOURCE_TYPE for a in actions)}

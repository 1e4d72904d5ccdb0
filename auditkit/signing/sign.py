"""`PackSigner`: sign report.pdf (PAdES) and timestamp it and the manifest (RFC 3161).

Order inside `write_pack`, in the staging folder:

1. every file rendered (CSV, HTML, PDF);
2. `sign_pack`: with a TSA, report.pdf gets a document timestamp over the rendered report;
   with a key, then a PAdES signature (B-B; B-T with a TSA: the signature carries a
   signature timestamp) covering the whole file, so nothing can be appended after it
   unnoticed. Each is an incremental update appended to the rendered bytes, which stay the
   file's first revision(s) byte for byte (checked here; the manifest records their length
   and SHA-256 as `unsigned`);
3. manifest.json, hashing the signed PDF and recording who signed, the certificate's
   SHA-256 and the timestamps (`sign_pack`'s return value);
4. `timestamp_manifest`: manifest.json.tsr, the TSA's DER TimeStampResp over manifest.json
   (`openssl ts -verify -data manifest.json -in manifest.json.tsr -CAfile ca.pem`). It
   cannot be listed in the manifest it covers; `pack` knows it as the manifest's companion.

A key problem is a ConfigError from `PackSigner.load`, before any work; a TSA problem a
SourceError in step 2 or 4, inside the staging folder, which is then removed.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko_certvalidator.registry import SimpleCertificateStore

from auditkit.errors import AuditkitError, ReportError, one_line
from auditkit.signing.keys import SigningMaterial, is_test_certificate, load_signing_material
from auditkit.signing.settings import MANIFEST, MANIFEST_TSR, PDF_NAME, SigningOptions
from auditkit.signing.tsa import MD_ALGORITHM, CheckedTimeStamper, timestamp_bytes, utc_text

logger = logging.getLogger(__name__)

SIGNATURE_FIELD = "auditkit-signature"
TIMESTAMP_FIELD = "auditkit-document-timestamp"
SIGNING_REASON = "auditkit evidence pack"
# What `check_tsa` asks the TSA to stamp before a pack is rendered.
TSA_CHECK_DATA = b"auditkit: time-stamping authority check"
TEST_ONLY_NOTE = (
    "signed and/or timestamped with auditkit's TEST-ONLY certificates, whose keys are public: "
    "this shows the files are unchanged since signing, not who signed them or when. "
    "Never use them for real evidence."
)


class _Update(IncrementalPdfFileWriter):
    """An incremental update that leaves the document's metadata as rendered.

    pyHanko's writer would stamp the signing time as the modification date and rewrite the
    XMP `pdf:Producer` to "pyHanko …" while appending "; pyHanko …" to the Info dictionary's
    /Producer: the two then disagree, which PDF/A forbids (ISO 19005-3 §6.6.2.3.1). The
    signature and timestamps carry their own times; the report's metadata describes the
    report.
    """

    def _update_meta(self) -> None:
        pass


class PackSigner:
    """Signing material and TSA of one command; `load` checks them before any work."""

    def __init__(self, options: SigningOptions, material: SigningMaterial | None) -> None:
        self.options = options
        self.material = material
        self._signer: signers.SimpleSigner | None = None
        self._tsa_answered = False  # check_tsa asks once per signer
        if material is not None:
            registry = SimpleCertificateStore()
            registry.register_multiple(asn1_x509.Certificate.load(c) for c in material.chain[1:])
            self._signer = signers.SimpleSigner(
                signing_cert=asn1_x509.Certificate.load(material.cert_der),
                signing_key=asn1_keys.PrivateKeyInfo.load(material.key_der),
                cert_registry=registry,
            )

    def __repr__(self) -> str:
        return f"PackSigner(profile={self.profile!r}, tsa_url={self.tsa_url!r})"

    @classmethod
    def load(cls, options: SigningOptions) -> PackSigner:
        material = None
        if options.key_file is not None and options.cert_file is not None:
            material = load_signing_material(
                options.key_file, options.cert_file, options.password, options.password_source
            )
        return cls(options, material)

    @property
    def tsa_url(self) -> str | None:
        return self.options.tsa_url

    @property
    def profile(self) -> str | None:
        """The PAdES baseline level of the signature (None: document timestamp only)."""
        if self.material is None:
            return None
        return "PAdES-B-T" if self.tsa_url else "PAdES-B-B"

    def check_tsa(self) -> None:
        """SourceError now unless the TSA answers a checked timestamp, so that a pack is not
        rendered for minutes only to fail at its first timestamp. One request more per pack,
        over a fixed digest of no pack content; the TSA is asked again for each real one."""
        if self.tsa_url is None or self._tsa_answered:
            return
        token = timestamp_bytes(self.tsa_url, TSA_CHECK_DATA, self.options.tsa_timeout)
        self._tsa_answered = True
        logger.info("time-stamping authority %s answers: %s", self.tsa_url, token.tsa)

    def _timestamper(self) -> CheckedTimeStamper | None:
        if self.tsa_url is None:
            return None
        return CheckedTimeStamper(self.tsa_url, self.options.tsa_timeout)

    def sign_pack(self, pack_dir: Path) -> dict[str, Any]:
        """Sign and/or timestamp `pack_dir`/report.pdf in place; the manifest's `signing`."""
        record: dict[str, Any] = {}
        pdf = pack_dir / PDF_NAME
        test_only: list[str] = []
        if pdf.is_file():
            record["pdf"], test_only = self.sign_pdf(pdf)
        elif self.material is not None:
            raise ReportError("a signing key was given, but this pack has no report.pdf to sign")
        if self.tsa_url is not None:
            record["manifest_timestamp"] = {"file": MANIFEST_TSR, "tsa_url": self.tsa_url}
        # Said in the manifest itself, so nobody takes the demo's signature for a real one.
        if test_only:
            record["test_only"] = {"certificates": test_only, "note": TEST_ONLY_NOTE}
        return record

    def sign_pdf(self, pdf: Path) -> tuple[dict[str, Any], list[str]]:
        """Timestamp and/or sign `pdf` in place. Returns the manifest's record of it, and the
        subjects of the certificates used that are auditkit's test material."""
        unsigned = pdf.read_bytes()
        timestamper = self._timestamper()
        record: dict[str, Any] = {
            "file": pdf.name,
            "unsigned": {  # report.pdf as rendered: the signed file starts with these bytes
                "bytes": len(unsigned),
                "sha256": hashlib.sha256(unsigned).hexdigest(),
            },
        }
        data = unsigned
        try:
            # The document timestamp first, over the rendered report; then the signature, so
            # that the signature covers the whole file and nothing can follow it unnoticed
            # (a signature followed by other revisions needs pyHanko's difference analysis to
            # vouch for them, which takes minutes on a few hundred pages).
            if timestamper is not None:
                stamper = signers.PdfTimeStamper(timestamper, field_name=TIMESTAMP_FIELD)
                writer = _Update(io.BytesIO(data))
                data = bytes(stamper.timestamp_pdf(writer, MD_ALGORITHM).getvalue())
                record["document_timestamp"] = timestamper.issued[-1].record()
            if self._signer is not None and self.material is not None:
                data = self._signature(data, timestamper)
                record.update(
                    profile=self.profile,
                    signer=self.material.subject,
                    signer_certificate_sha256=self.material.cert_sha256,
                    signed_at=_signing_time(data),
                )
                if timestamper is not None:
                    record["signature_timestamp"] = timestamper.issued[-1].record()
            test_only = {t.tsa for t in (timestamper.issued if timestamper else []) if t.test_only}
            if self.material is not None and is_test_certificate(self.material.cert_der):
                test_only.add(self.material.subject)
        except AuditkitError:
            raise  # the TSA's SourceError, already one line
        except Exception as exc:  # pyHanko: a PDF it cannot update, a signing failure
            raise ReportError(
                f"{pdf.name} could not be signed: {one_line(str(exc), 200) or type(exc).__name__}"
            ) from None
        if data[: len(unsigned)] != unsigned:  # never expected: incremental updates only append
            raise ReportError(f"signing rewrote the rendered {pdf.name}; refusing to keep it")
        pdf.write_bytes(data)
        logger.info(
            "%s: %s%s (%d bytes appended)",
            pdf.name,
            self.profile or "no signature",
            ", document timestamp" if timestamper else "",
            len(data) - len(unsigned),
        )
        return record, sorted(test_only)

    def _signature(self, data: bytes, timestamper: CheckedTimeStamper | None) -> bytes:
        assert self._signer is not None
        meta = signers.PdfSignatureMetadata(
            field_name=SIGNATURE_FIELD,
            md_algorithm=MD_ALGORITHM,
            subfilter=SigSeedSubFilter.PADES,
            reason=SIGNING_REASON,
        )
        writer = _Update(io.BytesIO(data))
        out = signers.PdfSigner(meta, self._signer, timestamper=timestamper).sign_pdf(writer)
        return bytes(out.getvalue())

    def timestamp_manifest(self, pack_dir: Path) -> None:
        """Write manifest.json.tsr: the TSA's DER TimeStampResp over manifest.json."""
        if self.tsa_url is None:
            return
        manifest = pack_dir / MANIFEST
        token = timestamp_bytes(self.tsa_url, manifest.read_bytes(), self.options.tsa_timeout)
        (pack_dir / MANIFEST_TSR).write_bytes(token.response)
        logger.info("%s: %s by %s", MANIFEST_TSR, utc_text(token.time), token.tsa)


def _signing_time(data: bytes) -> str | None:
    """The signing time the signature dictionary records (/M), as the manifest shows it."""
    reader = PdfFileReader(io.BytesIO(data))
    for sig in reader.embedded_signatures:
        if sig.field_name == SIGNATURE_FIELD and sig.self_reported_timestamp is not None:
            return utc_text(sig.self_reported_timestamp)
    return None

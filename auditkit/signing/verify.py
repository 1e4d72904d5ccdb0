"""What `auditkit verify` checks beyond the manifest's hashes: report.pdf's signature and
timestamps, and manifest.json.tsr.

Each signature or token is validated with pyHanko against the trust anchors the user gave
(`--trust FILE`, `--trust-system`). Without any, only integrity is claimed: "signature
intact, signer not checked against a trust anchor". Revocation is not checked (verify
works offline). A problem names the file it is about:

- report.pdf: a signature or timestamp that does not verify, bytes after the newest one
  (auditkit signs last, so nothing may follow its signature), a signer other than the
  manifest records, a signature or timestamp the manifest records but the PDF lacks or the
  reverse, unsigned bytes that differ from the rendered report, and (trust given) a
  signer or TSA outside the trust anchors;
- manifest.json.tsr: missing though the manifest records it, not a token, a token whose
  signature does not verify, and (trust given) a TSA outside the trust anchors;
- manifest.json: changed after it was timestamped (its digest is not the one the token covers).
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel, SignatureStatus
from pyhanko_certvalidator import ValidationContext

from auditkit.errors import one_line
from auditkit.signing.keys import certificate_subject, is_test_certificate
from auditkit.signing.settings import MANIFEST, MANIFEST_TSR, PDF_NAME, Trust
from auditkit.signing.sign import SIGNATURE_FIELD, TIMESTAMP_FIELD
from auditkit.signing.tsa import check_integrity, load_token, token_status, tst_info, utc_text

logger = logging.getLogger(__name__)

# A signer certificate may say digitalSignature or nonRepudiation (pyHanko asks for the latter).
_SIGNER_USAGE = KeyUsageConstraints(
    key_usage={"digital_signature", "non_repudiation"}, match_all_key_usages=False
)


@dataclass
class SigningReport:
    """Every signature and token found (`checks`) and every problem, each naming a file."""

    trust: Trust
    checks: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def problem(self, file: str, text: str) -> None:
        self.problems.append(f"{file}: {text}")

    def lines(self) -> list[str]:
        """One line per signature or token, for `verify`'s human output, then a warning
        when any of them is auditkit's TEST-ONLY material (the demo's)."""
        lines = [_line(check, self.trust) for check in self.checks]
        test_only = [c for c in self.checks if c.get("test_only")]
        if test_only:
            lines.append(_test_only_line(test_only, self.trust))
        return lines


def _test_only_line(checks: list[dict[str, Any]], trust: Trust) -> str:
    """Nobody may take the demo's signature for a real one: its key ships with auditkit."""
    signers = sorted({str(c["signer"]) for c in checks if c.get("signer")})
    tsas = sorted({str(c["tsa"]) for c in checks if c.get("tsa")})
    parties = [f"signer {s}" for s in signers] + [f"TSA {t}" for t in tsas]
    issuers = sorted({str(c["issuer"]) for c in checks if c.get("issuer")})
    if any(c["trust"] == "trusted" for c in checks):
        verdict = f"trusted only because --trust names a test CA ({trust.describe()})"
    elif trust.given:
        verdict = f"not trusted by {trust.describe()}"
    else:
        verdict = "not trusted unless --trust names that CA"
    return (
        f"TEST ONLY: the certificates of {' and '.join(parties)} are auditkit's test "
        f"certificates, issued by {' and '.join(issuers)}, whose keys are public: the signature "
        f"and timestamps show the files are unchanged since signing, not who signed or when; "
        f"{verdict}"
    )


def _context(trust: Trust) -> ValidationContext:
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(der) for der in trust.roots],
        allow_fetching=False,
        revocation_mode="soft-fail",
    )


def _trust(trusted: bool, path: Any, problem: Any, trust: Trust) -> dict[str, Any]:
    """The check's trust fields: never "trusted" unless the user named trust anchors."""
    if not trust.given:
        return {"trust": "not_checked", "trust_anchor": None}
    anchor = None
    if trusted and path is not None:
        authority = path.trust_anchor.authority
        cert = getattr(authority, "certificate", None)
        anchor = certificate_subject(cert.dump()) if cert is not None else str(authority.name)
    return {
        "trust": "trusted" if trusted else "untrusted",
        "trust_anchor": anchor,
        "trust_problem": None if problem is None else problem.name,
    }


def _issuer(der: bytes) -> dict[str, Any]:
    """Who issued the certificate, and whether it is auditkit's TEST-ONLY material."""
    from cryptography import x509

    issuer = x509.load_der_x509_certificate(der).issuer.rfc4514_string()
    return {"issuer": issuer, "test_only": is_test_certificate(der)}


def _trust_fields(status: SignatureStatus, trust: Trust) -> dict[str, Any]:
    return _trust(status.trusted, status.validation_path, status.trust_problem_indic, trust)


def _line(check: dict[str, Any], trust: Trust) -> str:
    who = check.get("signer") or check.get("tsa")
    kind = check["kind"]
    head = {
        "signature": f"{check['file']}: signed by {who} at {check.get('time')}"
        f" ({check.get('profile') or 'PAdES'})",
        "signature_timestamp": f"{check['file']}: signature timestamped {check.get('time')} "
        f"by {who}",
        "document_timestamp": f"{check['file']}: document timestamped {check.get('time')} by {who}",
        "manifest_timestamp": f"{check['file']}: {MANIFEST} timestamped {check.get('time')} "
        f"by {who}",
    }[kind]
    party, noun = ("signer", "signature") if kind == "signature" else ("TSA", "token")
    if not check["intact"]:
        return f"{head}; {noun} does NOT verify"
    if check["trust"] == "not_checked":
        return f"{head}; {noun} intact, {party} not checked against a trust anchor"
    if check["trust"] == "trusted":
        return (
            f"{head}; {noun} intact, {party} trusted: chains to {check['trust_anchor']} "
            f"({trust.describe()}; revocation not checked)"
        )
    return f"{head}; {noun} intact, {party} NOT trusted by {trust.describe()}"


def _judge(report: SigningReport, check: dict[str, Any], what: str, party: str) -> None:
    report.checks.append(check)
    if not check["intact"]:
        report.problem(check["file"], f"{what} does not verify: the bytes it covers changed")
    elif check["trust"] == "untrusted":
        report.problem(
            check["file"],
            f"{what}: {party} {check.get('signer') or check.get('tsa')} does not chain to a "
            f"trust anchor in {report.trust.describe()} ({check.get('trust_problem')})",
        )


def _covers(r: SigningReport, what: str, status: Any, last: bool) -> None:
    """The newest signature or timestamp must cover the whole file; each one a whole
    revision. (No difference analysis: the manifest pins report.pdf's exact bytes, and the
    signature is applied last, so nothing may follow it; pyHanko's analysis of what follows
    a signature takes minutes on a few hundred pages.)"""
    if last and status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        r.problem(PDF_NAME, f"changed after its {what}: bytes follow what it signs")
    elif status.coverage not in (
        SignatureCoverageLevel.ENTIRE_FILE,
        SignatureCoverageLevel.ENTIRE_REVISION,
    ):
        r.problem(PDF_NAME, f"its {what} does not cover a whole revision")


def _check_pdf(pack_dir: Path, recorded: Any, context: ValidationContext, r: SigningReport) -> None:
    pdf = pack_dir / PDF_NAME
    recorded = recorded if isinstance(recorded, Mapping) else {}
    if not pdf.is_file():
        return  # the hashes report it removed
    data = pdf.read_bytes()
    if not recorded and b"/ByteRange" not in data:
        return  # never signed
    rendered = recorded.get("unsigned")
    if isinstance(rendered, Mapping) and isinstance(rendered.get("bytes"), int):
        head = data[: rendered["bytes"]]
        if hashlib.sha256(head).hexdigest() != rendered.get("sha256"):
            r.problem(
                PDF_NAME, "its unsigned revisions are not the rendered report the manifest records"
            )
    try:
        signatures = PdfFileReader(io.BytesIO(data), strict=False).embedded_signatures
    except Exception as exc:
        r.problem(PDF_NAME, f"cannot be read as a signed PDF ({one_line(str(exc), 160)})")
        return
    expected = {}  # in the order auditkit applies them
    if recorded.get("document_timestamp"):
        expected[TIMESTAMP_FIELD] = "a document timestamp"
    if recorded.get("signer"):
        expected[SIGNATURE_FIELD] = f"a signature by {recorded['signer']}"
    fields = {str(s.field_name) for s in signatures}
    for name, what in expected.items():
        if name not in fields:
            r.problem(PDF_NAME, f"the manifest records {what}; it has none")
    # What must cover the whole file: auditkit's signature (applied last), else its document
    # timestamp, else (a manifest that records neither) the newest signature in the file.
    final = next(iter(reversed(expected)), None)
    if final is None and signatures:
        final = max(signatures, key=lambda s: s.signed_revision).field_name
    for sig in signatures:
        if recorded and sig.field_name not in expected:
            r.problem(
                PDF_NAME, f"carries a signature the manifest does not record ({sig.field_name})"
            )
        try:
            if str(sig.sig_object_type) == "/DocTimeStamp":
                _doc_timestamp(sig, context, r, sig.field_name == final)
            else:
                _signature(sig, recorded, context, r, sig.field_name == final)
        except Exception as exc:  # pyHanko could not evaluate it at all
            r.problem(
                PDF_NAME,
                f"signature field {sig.field_name} cannot be validated "
                f"({one_line(str(exc), 160) or type(exc).__name__})",
            )


def _signature(
    sig: Any, recorded: Mapping[str, Any], context: ValidationContext, r: SigningReport, last: bool
) -> None:
    status = validate_pdf_signature(
        sig, signer_validation_context=context, key_usage_settings=_SIGNER_USAGE, skip_diff=True
    )
    cert = status.signing_cert
    when = status.signer_reported_dt
    check = {
        "file": PDF_NAME,
        "kind": "signature",
        "field": sig.field_name,
        "profile": recorded.get("profile") if sig.field_name == SIGNATURE_FIELD else None,
        "signer": certificate_subject(cert.dump()),
        **_issuer(cert.dump()),
        "certificate_sha256": cert.sha256.hex(),
        "time": utc_text(when) if when else None,
        "intact": bool(status.intact and status.valid),
        **_trust_fields(status, r.trust),
    }
    _judge(r, check, f"signature {sig.field_name}", "signer")
    _covers(r, f"signature {sig.field_name}", status, last)
    expected = recorded.get("signer_certificate_sha256")
    if sig.field_name == SIGNATURE_FIELD and expected and expected != check["certificate_sha256"]:
        r.problem(PDF_NAME, f"signed by {check['signer']}, not the signer the manifest records")
    stamp = status.timestamp_validity
    if stamp is not None:
        tsa_check = {
            "file": PDF_NAME,
            "kind": "signature_timestamp",
            "tsa": certificate_subject(stamp.signing_cert.dump()),
            **_issuer(stamp.signing_cert.dump()),
            "time": utc_text(stamp.timestamp),
            "intact": bool(stamp.intact and stamp.valid),
            **_trust_fields(stamp, r.trust),
        }
        _judge(r, tsa_check, "signature timestamp", "TSA")
    elif sig.field_name == SIGNATURE_FIELD and recorded.get("signature_timestamp"):
        r.problem(PDF_NAME, "the manifest records a signature timestamp; the signature has none")


def _doc_timestamp(sig: Any, context: ValidationContext, r: SigningReport, last: bool) -> None:
    status = validate_pdf_timestamp(sig, validation_context=context, skip_diff=True)
    check = {
        "file": PDF_NAME,
        "kind": "document_timestamp",
        "field": sig.field_name,
        "tsa": certificate_subject(status.signing_cert.dump()),
        **_issuer(status.signing_cert.dump()),
        "time": utc_text(status.timestamp),
        "intact": bool(status.intact and status.valid),
        **_trust_fields(status, r.trust),
    }
    _judge(r, check, f"document timestamp {sig.field_name}", "TSA")
    _covers(r, f"document timestamp {sig.field_name}", status, last)


def manifest_token_problem(pack_dir: Path, manifest_data: bytes) -> str | None:
    """Why manifest.json.tsr shows manifest.json changed, if it does (None: it does not, or
    there is no usable token). For a manifest too damaged to read as an auditkit one."""
    try:
        token = load_token((pack_dir / MANIFEST_TSR).read_bytes())
        imprint = tst_info(token)["message_imprint"]
        algo = imprint["hash_algorithm"]["algorithm"].native
        check_integrity(token, imprint["hashed_message"].native, algo)
    except (OSError, ValueError):
        return None
    if hashlib.new(algo, manifest_data).digest() != imprint["hashed_message"].native:
        return f"{MANIFEST}: changed after it was timestamped ({MANIFEST_TSR} covers other bytes)"
    return None


def _check_manifest_token(
    pack_dir: Path, recorded: Any, data: bytes, context: ValidationContext, r: SigningReport
) -> None:
    tsr = pack_dir / MANIFEST_TSR
    if not tsr.is_file():
        if recorded:
            r.problem(MANIFEST_TSR, f"removed: the manifest records a timestamp over {MANIFEST}")
        return
    try:
        token = load_token(tsr.read_bytes())
        imprint = tst_info(token)["message_imprint"]
        algo = imprint["hash_algorithm"]["algorithm"].native
        covered = imprint["hashed_message"].native
        check_integrity(token, covered, algo)  # the token itself, whatever it covers
    except (OSError, ValueError) as exc:
        r.problem(MANIFEST_TSR, f"not a valid RFC 3161 timestamp ({one_line(str(exc), 160)})")
        return
    if hashlib.new(algo, data).digest() != covered:
        r.problem(MANIFEST, f"changed after it was timestamped ({MANIFEST_TSR} covers other bytes)")
        return
    status = token_status(token, lambda a: hashlib.new(a, data).digest(), context)
    intact = bool(status["intact"] and status["valid"])
    path, problem = status["validation_path"], status["trust_problem_indic"]
    check = {
        "file": MANIFEST_TSR,
        "kind": "manifest_timestamp",
        "tsa": certificate_subject(status["signing_cert"].dump()),
        **_issuer(status["signing_cert"].dump()),
        "time": utc_text(status["timestamp"]),
        "intact": intact,
        **_trust(intact and problem is None and path is not None, path, problem, r.trust),
    }
    _judge(r, check, "timestamp token", "TSA")


def verify_signing(
    pack_dir: Path, meta: Mapping[str, Any], manifest_data: bytes, trust: Trust
) -> SigningReport:
    """Check report.pdf's signatures and timestamps and manifest.json.tsr (see module doc)."""
    report = SigningReport(trust)
    signing = meta.get("signing")
    signing = signing if isinstance(signing, Mapping) else {}
    context = _context(trust)
    _check_pdf(pack_dir, signing.get("pdf"), context, report)
    _check_manifest_token(
        pack_dir, signing.get("manifest_timestamp"), manifest_data, context, report
    )
    if trust.given and not report.checks:
        report.problem(
            PDF_NAME, f"not signed or timestamped: nothing to check against {trust.describe()}"
        )
    return report

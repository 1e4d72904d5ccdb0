"""RFC 3161 client: one POST per token, the answer checked before anything uses it.

A TSA that cannot be reached, answers an HTTP error, refuses, or answers anything but a
granted TimeStampResp whose token covers exactly what was sent (hash algorithm, digest,
nonce) and whose signature verifies under the certificate it carries, is a SourceError
(exit 4): an upstream service failed, and the pack that needed the token is not written.

`token_status` is the check `auditkit verify` runs on a stored token, with the trust roots
the user gave (or none: then only integrity is claimed).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from asn1crypto import algos, cms, core, tsp
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.generic_cms import (
    extract_certs_for_validation,
    validate_sig_integrity,
    validate_tst_signed_data,
)
from pyhanko_certvalidator import ValidationContext

from auditkit.errors import SourceError, one_line
from auditkit.signing.keys import certificate_subject, is_test_certificate

MD_ALGORITHM = "sha256"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
_MAX_REPLY_BYTES = 1 << 20


class TimeStampResponse(core.Sequence):
    """RFC 3161 TimeStampResp. asn1crypto's own `tsp.TimeStampResp` requires the token,
    which a refusal (RFC 3161 §2.4.2) leaves out, so a TSA's "no" would read as garbage."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


def utc_text(when: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second (manifest and verify output)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TimestampToken:
    """A checked token: the TSA's whole answer (DER TimeStampResp) and what it says."""

    response: bytes
    token: cms.ContentInfo
    time: datetime
    tsa: str  # the TSA certificate's subject

    def record(self) -> dict[str, str]:
        return {"time": utc_text(self.time), "tsa": self.tsa}

    @property
    def test_only(self) -> bool:
        """Whether the TSA's certificate is auditkit's test material (`is_test_certificate`)."""
        signer = extract_certs_for_validation(self.token["content"]).signer_cert
        return is_test_certificate(signer.dump())


def tst_info(token: cms.ContentInfo) -> tsp.TSTInfo:
    """The TSTInfo a token encapsulates; ValueError if it is not a timestamp token."""
    if token["content_type"].native != "signed_data":
        raise ValueError("not a CMS SignedData")
    content = token["content"]["encap_content_info"]["content"]
    info = content.parsed if content is not None else None
    if not isinstance(info, tsp.TSTInfo):
        raise ValueError("the SignedData does not hold a TSTInfo")
    return info


def check_structure(token: cms.ContentInfo) -> None:
    """ValueError unless the parts of a token its signature does not cover (SignedData and
    SignerInfo versions, the digest algorithm list, algorithm parameters) are as a
    conforming token has them, so that no byte of a stored token changes unnoticed."""
    token.native  # noqa: B018 (every nested value must parse)
    signed = token["content"]
    if signed["version"].native != "v3":  # RFC 5652 §5.1: eContentType is not id-data
        raise ValueError(f"SignedData version {signed['version'].native}")
    if len(signed["signer_infos"]) != 1:
        raise ValueError("a timestamp token has exactly one signer")
    info = signed["signer_infos"][0]
    want = "v1" if info["sid"].name == "issuer_and_serial_number" else "v3"
    if info["version"].native != want:
        raise ValueError(f"SignerInfo version {info['version'].native}")
    listed = list(signed["digest_algorithms"])
    if [a["algorithm"].native for a in listed] != [info["digest_algorithm"]["algorithm"].native]:
        raise ValueError("its digest algorithm list is not its signer's algorithm")
    for alg in (*listed, info["digest_algorithm"]):
        if not isinstance(alg["parameters"], core.Null | core.Void):
            raise ValueError("a digest algorithm has parameters")


def check_integrity(
    token: cms.ContentInfo, digest: bytes, md_algorithm: str
) -> tuple[datetime, str]:
    """ValueError unless `token` is a timestamp over (`md_algorithm`, `digest`) whose signature
    verifies under its own certificate; returns its time and the TSA's subject. No trust
    decision: see `token_status`."""
    try:
        info = tst_info(token)
        imprint = info["message_imprint"]
        if imprint["hash_algorithm"]["algorithm"].native != md_algorithm:
            raise ValueError(f"it covers a {imprint['hash_algorithm']['algorithm'].native} digest")
        if imprint["hashed_message"].native != digest:
            raise ValueError("its message imprint is not the digest that was sent")
        check_structure(token)
        signed = token["content"]
        signer_cert = extract_certs_for_validation(signed).signer_cert
        signer_info = signed["signer_infos"][0]
        content = bytes(signed["encap_content_info"]["content"])
        md = signer_info["digest_algorithm"]["algorithm"].native
        intact, valid = validate_sig_integrity(
            signer_info, signer_cert, "tst_info", hashlib.new(md, content).digest()
        )
    except ValueError:
        raise
    except Exception as exc:  # asn1crypto and pyHanko raise many kinds for a damaged token
        raise ValueError(one_line(str(exc), 160) or type(exc).__name__) from None
    if not (intact and valid):
        raise ValueError("its signature does not verify under the certificate it carries")
    return info["gen_time"].native, certificate_subject(signer_cert.dump())


def _post(url: str, body: bytes, timeout: float) -> bytes:
    try:
        # trust_env=False: auditkit connects directly, as its MultiMail and Intercom clients
        # do, so a proxy variable in a cron or CI environment cannot stand between it and
        # the TSA (a dead one turned a local TSA into "could not be reached").
        with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
            reply = client.post(
                url, content=body, headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
            )
    except httpx.HTTPError as exc:
        raise SourceError(
            f"time-stamping authority {url} could not be reached "
            f"({type(exc).__name__}: {one_line(str(exc), 200) or 'no detail'})"
        ) from None
    if reply.status_code != 200:
        raise SourceError(f"time-stamping authority {url} answered HTTP {reply.status_code}")
    if len(reply.content) > _MAX_REPLY_BYTES:
        raise SourceError(f"time-stamping authority {url} answered over 1 MiB; not a timestamp")
    return reply.content


def _granted_token(url: str, data: bytes, nonce: int) -> cms.ContentInfo:
    def garbage(why: str) -> SourceError:
        return SourceError(
            f"time-stamping authority {url} answered something that is not a valid "
            f"RFC 3161 timestamp ({why})"
        )

    try:
        response = TimeStampResponse.load(data, strict=True)
        status = response["status"]
        if status["status"].native != "granted":
            text = "; ".join(status["status_string"].native or []) or "no reason given"
            raise SourceError(
                f"time-stamping authority {url} refused the request "
                f"({status['status'].native}: {one_line(text, 200)})"
            )
        token = response["time_stamp_token"]
        if tst_info(token)["nonce"].native != nonce:
            raise garbage("its nonce is not the one sent")
        return token
    except SourceError:
        raise
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError...
        raise garbage(one_line(str(exc), 120) or type(exc).__name__) from None


def _query(digest: bytes, md_algorithm: str, nonce: int) -> bytes:
    return bytes(
        tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": tsp.MessageImprint(
                    {
                        "hash_algorithm": algos.DigestAlgorithm({"algorithm": md_algorithm}),
                        "hashed_message": digest,
                    }
                ),
                "nonce": nonce,
                "cert_req": True,
            }
        ).dump()
    )


def fetch_timestamp(url: str, digest: bytes, md_algorithm: str, timeout: float) -> TimestampToken:
    """Ask `url` for a token over `digest`; SourceError unless a checked token comes back."""
    nonce = secrets.randbits(62) | (1 << 62)  # positive, fixed width
    data = _post(url, _query(digest, md_algorithm, nonce), timeout)
    token = _granted_token(url, data, nonce)
    try:
        when, tsa = check_integrity(token, digest, md_algorithm)
    except Exception as exc:
        raise SourceError(
            f"time-stamping authority {url} answered a token that does not hold: "
            f"{one_line(str(exc), 160) or type(exc).__name__}"
        ) from None
    return TimestampToken(response=data, token=token, time=when, tsa=tsa)


def timestamp_bytes(url: str, data: bytes, timeout: float) -> TimestampToken:
    return fetch_timestamp(url, hashlib.sha256(data).digest(), MD_ALGORITHM, timeout)


class CheckedTimeStamper(TimeStamper):
    """pyHanko's TimeStamper over `fetch_timestamp`: every token it hands pyHanko is checked.

    pyHanko asks once with a dummy digest to size the signature; `issued` keeps every token.
    """

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__(include_nonce=True)
        self.url = url
        self.timeout = timeout
        self.issued: list[TimestampToken] = []

    async def async_timestamp(self, message_digest: bytes, md_algorithm: str) -> cms.ContentInfo:
        token = await asyncio.to_thread(
            fetch_timestamp, self.url, message_digest, md_algorithm, self.timeout
        )
        self.issued.append(token)
        return token.token


def load_token(data: bytes) -> cms.ContentInfo:
    """A stored token: a DER TimeStampResp (what `openssl ts -reply` writes) or a bare token
    (`-token_out`). ValueError when it is neither, or a refusal."""
    try:
        response = TimeStampResponse.load(data, strict=True)
        token = response["time_stamp_token"]
        if response["status"]["status"].native == "granted" and token.native is not None:
            tst_info(token)
            return token
    except Exception:
        pass
    try:
        token = cms.ContentInfo.load(data, strict=True)
        tst_info(token)
        return token
    except Exception:
        raise ValueError("not an RFC 3161 TimeStampResp or timestamp token") from None


def token_status(
    token: cms.ContentInfo, expected: Callable[[str], bytes], context: ValidationContext
) -> dict[str, Any]:
    """pyHanko's status of a stored token against `context` (intact, valid, trusted path…);
    ValueError when it cannot be evaluated at all."""
    try:
        return asyncio.run(validate_tst_signed_data(token["content"], context, expected))
    except Exception as exc:
        raise ValueError(one_line(str(exc), 160) or type(exc).__name__) from None

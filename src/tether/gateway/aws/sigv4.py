"""SigV4 verification of an agent's request, with botocore's own canonicalisation.

Header form (``Authorization: AWS4-HMAC-SHA256 Credential=…``) and presigned query form
(``X-Amz-Signature=…``). The signature is recomputed with the agent's secret and
compared in constant time; nothing here decides more than "this key signed this request".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote

from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials
from multidict import CIMultiDictProxy

__all__ = [
    "HASHED_OFF_LOOP_BYTES",
    "MAX_SKEW_SECONDS",
    "SigV4Error",
    "SignedRequest",
    "check_time",
    "parse_signature",
    "payload_hash",
    "verify_signature",
]

MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_TIMESTAMP = "%Y%m%dT%H%M%SZ"
_HEADER = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)


class SigV4Error(Exception):
    """A request tether cannot accept as signed; ``code`` is the AWS error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What the signature says about itself (before it is verified)."""

    access_key_id: str
    date: str
    region: str
    service: str
    timestamp: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires: int | None = None


_REGION = re.compile(r"[a-z]{2,4}(-[a-z0-9]+)+-[0-9]{1,2}|aws-global")
"""AWS region names (``us-east-1``, ``eu-central-2``, ``us-gov-west-1``): the region and
the service make the upstream host (``https://{service}.{region}.amazonaws.com``), so a
scope with a dot or a slash in them would send the signed call elsewhere."""
_SERVICE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def _scope(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SigV4Error(
            "IncompleteSignature",
            f"the credential scope {credential!r} is not "
            "ACCESS_KEY/DATE/REGION/SERVICE/aws4_request",
        )
    region, service = parts[2], parts[3]
    if _REGION.fullmatch(region) is None or _SERVICE.fullmatch(service) is None:
        raise SigV4Error(
            "AuthorizationHeaderMalformed",
            f"the credential scope's region {region[:40]!r} or service {service[:40]!r} is "
            "not an AWS name (a region such as us-east-1, a service such as s3)",
        )
    return parts[0], parts[1], region, service


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for pair in raw_query.split("&") if raw_query else []:
        key, _, value = pair.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def parse_signature(headers: Mapping[str, str], raw_query: str) -> SignedRequest:
    """Raises ``SigV4Error``: ``MissingAuthenticationToken`` when the request is not
    signed at all, ``IncompleteSignature`` when the signature cannot be read."""
    authorization = headers.get("Authorization", "")
    query = dict(_query_pairs(raw_query))
    if authorization:
        match = _HEADER.match(authorization)
        if match is None:
            if authorization.startswith("AWS4-HMAC-SHA256"):
                raise SigV4Error("IncompleteSignature", "the Authorization header is malformed")
            raise SigV4Error(
                "InvalidSecurity", "only AWS Signature Version 4 (AWS4-HMAC-SHA256) is accepted"
            )
        akid, date, region, service = _scope(match["cred"])
        timestamp = headers.get("X-Amz-Date", "")
        if not timestamp:
            raise SigV4Error("IncompleteSignature", "X-Amz-Date is missing")
        return SignedRequest(
            akid,
            date,
            region,
            service,
            timestamp,
            tuple(match["headers"].lower().split(";")),
            match["sig"].lower(),
            presigned=False,
        )
    if "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise SigV4Error(
                "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256"
            )
        try:
            expires = int(query.get("X-Amz-Expires", ""))
        except ValueError:
            raise SigV4Error(
                "AuthorizationQueryParametersError", "X-Amz-Expires must be a number"
            ) from None
        if not 0 < expires <= MAX_PRESIGN_SECONDS:
            raise SigV4Error(
                "AuthorizationQueryParametersError", "X-Amz-Expires must be 1 to 604800 seconds"
            )
        akid, date, region, service = _scope(query.get("X-Amz-Credential", ""))
        return SignedRequest(
            akid,
            date,
            region,
            service,
            query.get("X-Amz-Date", ""),
            tuple(query.get("X-Amz-SignedHeaders", "host").lower().split(";")),
            query["X-Amz-Signature"].lower(),
            presigned=True,
            expires=expires,
        )
    if "AWSAccessKeyId" in query and "Signature" in query:
        raise SigV4Error(
            "InvalidRequest",
            "Signature Version 2 is not accepted: presign with signature_version='s3v4'",
        )
    raise SigV4Error(
        "MissingAuthenticationToken",
        "the request is not signed: send it with the agent's AWS access key pair from tether",
    )


def check_time(signed: SignedRequest, now: datetime | None = None) -> None:
    """Header form: within 15 minutes of now; presigned form: not expired."""
    try:
        at = datetime.strptime(signed.timestamp, _TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise SigV4Error(
            "IncompleteSignature", f"X-Amz-Date {signed.timestamp!r} is not a date"
        ) from None
    if signed.timestamp[:8] != signed.date:
        raise SigV4Error("SignatureDoesNotMatch", "the credential scope's date is not X-Amz-Date's")
    now = now or datetime.now(UTC)
    skew = (now - at).total_seconds()
    if signed.presigned and signed.expires is not None:
        if skew > signed.expires:
            raise SigV4Error("AccessDenied", "Request has expired")
        if -skew > MAX_SKEW_SECONDS:
            raise SigV4Error("RequestTimeTooSkewed", "the request's date is in the future")
        return
    if abs(skew) > MAX_SKEW_SECONDS:
        raise SigV4Error(
            "RequestTimeTooSkewed",
            f"The difference between the request time ({signed.timestamp}) and the current "
            f"time is too large (more than {MAX_SKEW_SECONDS // 60} minutes).",
        )


HASHED_OFF_LOOP_BYTES = 256 * 1024
"""A body past this is hashed on a thread: hashlib lets go of the GIL while it hashes, so
a 16 MB body (about 30 ms of SHA-256) does not hold the event loop."""


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def payload_hash(
    signed: SignedRequest, headers: Mapping[str, str], body: bytes | None
) -> str:
    """What the canonical request names as the payload: the client's
    ``x-amz-content-sha256`` when present (S3 requires it), ``UNSIGNED-PAYLOAD`` for a
    presigned S3 URL, otherwise the SHA-256 of the (already read) body."""
    declared = headers.get("X-Amz-Content-SHA256")
    if declared:
        return declared
    if signed.presigned and signed.service == "s3":
        return UNSIGNED_PAYLOAD
    if body is None or len(body) < HASHED_OFF_LOOP_BYTES:
        return _sha256_hex(body or b"")
    return await asyncio.to_thread(_sha256_hex, body)


def signer(signed: SignedRequest, secret: str) -> SigV4Auth:
    """botocore's signer for this scope and key (S3 does not normalise paths)."""
    cls = S3SigV4Auth if signed.service == "s3" else SigV4Auth
    return cls(Credentials(signed.access_key_id, secret), signed.service, signed.region)


def verify_signature(
    signed: SignedRequest,
    secret: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: CIMultiDictProxy[str],
    payload: str,
) -> None:
    """Recompute the signature with botocore's canonical request and compare it in
    constant time; raises ``SigV4Error('SignatureDoesNotMatch')``."""
    if "host" not in signed.signed_headers:
        raise SigV4Error("SignatureDoesNotMatch", "the Host header must be signed")
    query = raw_query
    if signed.presigned:
        query = "&".join(
            p for p in raw_query.split("&") if p.partition("=")[0] != "X-Amz-Signature"
        )
    auth = signer(signed, secret)
    request = AWSRequest(
        method=method, url=f"http://tether{raw_path}" + (f"?{query}" if query else "")
    )
    request.context["timestamp"] = signed.timestamp
    to_sign = HTTPHeaders()
    for name in signed.signed_headers:
        values = headers.getall(name, [])
        if not values:
            raise SigV4Error("SignatureDoesNotMatch", f"the signed header {name!r} is missing")
        for value in values:
            to_sign[name] = value
    canonical = "\n".join(
        [
            method.upper(),
            auth._normalize_url_path(raw_path),
            auth.canonical_query_string(request),
            auth.canonical_headers(to_sign) + "\n",
            auth.signed_headers(to_sign),
            payload,
        ]
    )
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, signed.signature):
        raise SigV4Error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )

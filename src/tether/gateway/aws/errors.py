"""AWS-style error answers, in the wire format of the service that was called, so SDKs
raise their usual ``ClientError`` with tether's reason as the message."""

from __future__ import annotations

import json
import struct
import uuid
from xml.sax.saxutils import escape

from aiohttp import web

from tether.redaction.text import redact_text

__all__ = ["aws_error", "cbor_map"]

_SENDER_STATUS = {
    "SignatureDoesNotMatch": 403,
    "InvalidAccessKeyId": 403,
    "InvalidClientTokenId": 403,
    "AuthFailure": 401,
    "AccessDenied": 403,
    "AccessDeniedException": 403,
    "RequestTimeTooSkewed": 403,
    "MissingAuthenticationToken": 403,
    "IncompleteSignature": 400,
    "InvalidSecurity": 400,
    "AuthorizationQueryParametersError": 400,
    "InvalidRequest": 400,
    "MalformedXML": 400,
    "SerializationException": 400,
    "EntityTooLarge": 400,
    "NotImplemented": 501,
    "ServiceUnavailable": 503,
    "InternalError": 500,
    "BadGateway": 502,
    "GatewayTimeout": 504,
}


def _text(item: str) -> bytes:
    data = item.encode()
    size = len(data)
    if size < 24:
        head = bytes([0x60 | size])
    elif size < 256:
        head = bytes([0x78, size])
    elif size < 65536:
        head = b"\x79" + struct.pack(">H", size)
    else:
        head = b"\x7a" + struct.pack(">I", size)
    return head + data


def cbor_map(fields: dict[str, str]) -> bytes:
    """A CBOR map of text strings (all an error body needs)."""
    return bytes([0xA0 | len(fields)]) + b"".join(_text(k) + _text(v) for k, v in fields.items())


def _json_code(code: str) -> str:
    if code == "AccessDenied":
        return "AccessDeniedException"
    return code


def aws_error(protocol: str, code: str, message: str, status: int | None = None) -> web.Response:
    """``protocol``: ``s3``, ``query``, ``ec2``, ``json`` or ``cbor``. The message goes to
    the agent: credentials in it are blanked as in the audit trail."""
    message = redact_text(message)
    status = status or _SENDER_STATUS.get(code, 400)
    request_id = uuid.uuid4().hex
    headers = {"x-amzn-RequestId": request_id, "x-amz-request-id": request_id}
    if protocol == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return web.Response(
            status=status, text=body, content_type="application/xml", headers=headers
        )
    if protocol == "ec2":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Response><Errors><Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
        return web.Response(status=status, text=body, content_type="text/xml", headers=headers)
    if protocol == "json":
        headers["x-amzn-ErrorType"] = _json_code(code)
        return web.Response(
            status=status,
            text=json.dumps({"__type": _json_code(code), "message": message}),
            content_type="application/x-amz-json-1.1",
            headers=headers,
        )
    if protocol == "cbor":
        headers["smithy-protocol"] = "rpc-v2-cbor"
        return web.Response(
            status=status,
            body=cbor_map({"__type": code, "message": message}),
            content_type="application/cbor",
            headers=headers,
        )
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<ErrorResponse><Error><Type>{kind}</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return web.Response(status=status, text=body, content_type="text/xml", headers=headers)

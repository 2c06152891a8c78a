"""A fake Amazon Bedrock runtime for Claude, serving the fake upstream's scripted replies.

``/model/{id}/invoke`` (a Messages body, token counts in ``X-Amzn-Bedrock-*`` headers),
``/model/{id}/invoke-with-response-stream`` (each event a ``chunk`` frame of the binary
event stream, CRCs included; ``message_stop`` carries ``amazon-bedrock-invocationMetrics``;
a broken stream ends with an exception frame; a ``corrupt_frame`` reply sends one frame
broken as its ``error_type`` says, ``_CORRUPTIONS``), ``/model/{id}/converse`` and
``/model/{id}/converse-stream`` (the Converse format: ``output.message``, ``usage``, the
``messageStart`` … ``metadata`` event frames) and ``/model/{id}/count-tokens``. Every call
must carry a SigV4 signature by ``access_key`` that verifies, as AWS would check it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tether.fakes.anthropic import Framing, _estimate_input
from tether.gateway.bedrock.eventstream import chunk_frame, encode_frame, exception_frame

if TYPE_CHECKING:
    from tether.fakes.anthropic import FakeAnthropic

__all__ = ["BEDROCK_KEY", "FakeBedrock"]

BEDROCK_KEY = ("AKIAFAKEBEDROCK00001", "fake-bedrock-secret-key-0000000000000000")
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]+)"
)
_ERRORS = {
    "rate_limit_error": ("ThrottlingException", 429),
    "overloaded_error": ("ServiceUnavailableException", 503),
    "invalid_request_error": ("ValidationException", 400),
    "authentication_error": ("UnrecognizedClientException", 403),
    "permission_error": ("AccessDeniedException", 403),
    "not_found_error": ("ResourceNotFoundException", 404),
}
_STREAM_EXCEPTIONS = {
    "overloaded_error": "serviceUnavailableException",
    "rate_limit_error": "throttlingException",
}


def _bad_prelude_crc(frame: bytes) -> bytes:
    return frame[:8] + bytes([frame[8] ^ 0xFF]) + frame[9:]


def _bad_message_crc(frame: bytes) -> bytes:
    return frame[:-1] + bytes([frame[-1] ^ 0xFF])


def _bad_length(frame: bytes) -> bytes:
    """A prelude whose CRC is right but whose total length is past any frame's (2 GiB)."""
    prelude = struct.pack(">II", 1 << 31, struct.unpack_from(">I", frame, 4)[0])
    return prelude + struct.pack(">I", zlib.crc32(prelude)) + frame[12:]


_CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "prelude_crc": _bad_prelude_crc,
    "message_crc": _bad_message_crc,
    "length": _bad_length,
}
"""How a ``corrupt_frame`` reply breaks its frame, by its ``error_type`` (any other: the
message CRC)."""


class BedrockFraming(Framing):
    content_type = "application/vnd.amazon.eventstream"

    def __init__(self) -> None:
        self._started = time.monotonic()

    def event(self, name: str, data: dict[str, Any]) -> bytes:
        if name == "error":
            error = data.get("error") or {}
            kind = _STREAM_EXCEPTIONS.get(error.get("type", ""), "internalServerException")
            return exception_frame(kind, str(error.get("message", "")))
        return chunk_frame(json.dumps(data, separators=(",", ":")).encode())

    def corrupt(self, event: bytes, how: str) -> bytes:
        return _CORRUPTIONS.get(how, _bad_message_crc)(event)

    def error(
        self, status: int, error_type: str, message: str, retry_after: int | None = None
    ) -> web.Response:
        kind, default_status = _ERRORS.get(error_type, ("InternalServerException", 500))
        headers = {
            "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        }
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        return web.json_response(
            {"message": message}, status=status or default_status, headers=headers
        )

    def _latency(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def body_headers(self, usage: dict[str, Any], output_tokens: int) -> dict[str, str]:
        return {
            "x-amzn-RequestId": f"{time.time_ns():x}",
            "X-Amzn-Bedrock-Input-Token-Count": str(usage["input_tokens"]),
            "X-Amzn-Bedrock-Output-Token-Count": str(output_tokens),
            "X-Amzn-Bedrock-Invocation-Latency": str(self._latency()),
        }

    def stop_event(self, usage: dict[str, Any], output_tokens: int) -> dict[str, Any]:
        return {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"],
                "outputTokenCount": output_tokens,
                "invocationLatency": self._latency(),
                "firstByteLatency": 1,
                "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
                "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
            },
        }


CONVERSE_DEFAULT_MAX_TOKENS = 4096


def _converse_block(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "tool_use":
        return {
            "toolUse": {"toolUseId": block["id"], "name": block["name"], "input": block["input"]}
        }
    return {"text": block.get("text", "")}


def _converse_usage(usage: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    return {
        "inputTokens": usage["input_tokens"],
        "outputTokens": output_tokens,
        "totalTokens": usage["input_tokens"] + output_tokens,
        "cacheReadInputTokens": usage["cache_read_input_tokens"],
        "cacheWriteInputTokens": usage["cache_creation_input_tokens"],
    }


class ConverseFraming(BedrockFraming):
    """The same scripted answers in the Converse format."""

    def __init__(self) -> None:
        super().__init__()
        self._usage: dict[str, Any] = {}

    def _frame(self, kind: str, payload: dict[str, Any]) -> bytes:
        return encode_frame(
            {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
            json.dumps(payload, separators=(",", ":")).encode(),
        )

    def event(self, name: str, data: dict[str, Any]) -> bytes:
        if name == "error":
            return super().event(name, data)
        if name == "message_start":
            return self._frame("messageStart", {"role": "assistant"})
        if name == "content_block_start":
            block = data["content_block"]
            if block.get("type") != "tool_use":
                return b""
            start = {"toolUse": {"toolUseId": block["id"], "name": block["name"]}}
            return self._frame(
                "contentBlockStart", {"contentBlockIndex": data["index"], "start": start}
            )
        if name == "content_block_delta":
            delta = data["delta"]
            if delta["type"] == "input_json_delta":
                converse = {"toolUse": {"input": delta["partial_json"]}}
            else:
                converse = {"text": delta.get("text", "")}
            return self._frame(
                "contentBlockDelta", {"contentBlockIndex": data["index"], "delta": converse}
            )
        if name == "content_block_stop":
            return self._frame("contentBlockStop", {"contentBlockIndex": data["index"]})
        if name == "message_delta":
            self._usage = data.get("usage") or {}
            return self._frame("messageStop", {"stopReason": data["delta"]["stop_reason"]})
        if name == "message_stop":
            usage = _converse_usage(self._usage, self._usage.get("output_tokens", 0))
            metrics = {"latencyMs": self._latency()}
            return self._frame("metadata", {"usage": usage, "metrics": metrics})
        return b""

    def message(self, message: dict[str, Any], headers: dict[str, str]) -> web.Response:
        usage = message["usage"]
        return web.json_response(
            {
                "output": {
                    "message": {
                        "role": "assistant",
                        "content": [_converse_block(b) for b in message["content"]],
                    }
                },
                "stopReason": message["stop_reason"],
                "usage": _converse_usage(usage, usage["output_tokens"]),
                "metrics": {"latencyMs": self._latency()},
            },
            headers={"x-amzn-RequestId": headers["x-amzn-RequestId"]},
        )


def _converse_as_messages(body: dict[str, Any]) -> dict[str, Any] | str:
    """The Messages body the scripted answers are made for; a str says what is wrong."""
    unknown = set(body) - {
        "messages",
        "system",
        "inferenceConfig",
        "toolConfig",
        "additionalModelRequestFields",
        "additionalModelResponseFieldPaths",
        "guardrailConfig",
        "promptVariables",
        "requestMetadata",
        "performanceConfig",
    }
    if unknown:
        return f"extraneous key [{sorted(unknown)[0]}] is not permitted"
    if not isinstance(body.get("messages"), list):
        return "messages: required"
    config = body.get("inferenceConfig") or {}
    return {
        "max_tokens": config.get("maxTokens", CONVERSE_DEFAULT_MAX_TOKENS),
        "messages": body["messages"],
        "system": body.get("system", ""),
    }


class FakeBedrock:
    def __init__(self, fake: FakeAnthropic, access_key: tuple[str, str] = BEDROCK_KEY) -> None:
        self.fake = fake
        self.access_key = access_key
        self.check_signatures = True
        """Off only in benchmarks, where botocore's verification would make this fake, not
        the server measured, the first limit on the shared cores."""

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model_id}/{operation}", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        framing = BedrockFraming()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return framing.error(400, "invalid_request_error", "the body is not valid JSON")
        self.fake.record(request, body if isinstance(body, dict) else {})
        refusal = self._check_signature(request, raw) if self.check_signatures else None
        if refusal:
            return framing.error(403, "authentication_error", refusal)
        model_id, operation = request.match_info["model_id"], request.match_info["operation"]
        if operation == "count-tokens":
            try:
                inner = json.loads(base64.b64decode(body["input"]["invokeModel"]["body"]))
            except (KeyError, TypeError, ValueError, binascii.Error):
                return framing.error(400, "invalid_request_error", "input.invokeModel.body")
            return web.json_response({"inputTokens": _estimate_input(inner)})
        if operation in ("converse", "converse-stream"):
            converse = ConverseFraming()
            equivalent = _converse_as_messages(body if isinstance(body, dict) else {})
            if isinstance(equivalent, str):
                return converse.error(400, "invalid_request_error", equivalent)
            return await self.fake.answer(
                request, equivalent, model_id, operation == "converse-stream", converse
            )
        if operation not in ("invoke", "invoke-with-response-stream"):
            return framing.error(404, "not_found_error", f"unknown operation {operation}")
        if not isinstance(body, dict) or not isinstance(body.get("anthropic_version"), str):
            return framing.error(
                400, "invalid_request_error", "anthropic_version: required (bedrock-2023-05-31)"
            )
        if "model" in body:
            return framing.error(400, "invalid_request_error", "extraneous key [model]")
        return await self.fake.answer(
            request, body, model_id, operation == "invoke-with-response-stream", framing
        )

    def _check_signature(self, request: web.Request, raw: bytes) -> str | None:
        """Why the signature does not verify, or None."""
        match = _AUTH.fullmatch(request.headers.get("Authorization", "").strip())
        if match is None:
            return "Missing Authentication Token"
        if match["key"] != self.access_key[0]:
            return f"The security token included in the request is invalid ({match['key']})"
        signed = match["signed"].split(";")
        aws_request = AWSRequest(
            method=request.method,
            url=f"http://{request.host}{request.raw_path}",
            data=raw,
            headers={name: request.headers.get(name, "") for name in signed if name != "host"},
        )
        aws_request.context["timestamp"] = request.headers.get("X-Amz-Date", "")
        signer = SigV4Auth(Credentials(*self.access_key), match["service"], match["region"])
        expected = signer.signature(
            signer.string_to_sign(aws_request, signer.canonical_request(aws_request)),
            aws_request,
        )
        if expected != match["sig"]:
            return "The request signature we calculated does not match the signature you provided"
        return None

"""tether's event-stream framing read by botocore's own decoder, and tether's reader
refusing what is not an event stream (bounded, never buffering a huge frame)."""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from tether.gateway.anthropic.stream_tap import StreamTap
from tether.gateway.bedrock.eventstream import (
    MAX_FRAME_BYTES,
    EventStreamError,
    FrameReader,
    chunk_event,
    chunk_frame,
    exception_frame,
)
from tether.gateway.bedrock.stream import BedrockStreamCodec


def test_botocore_decodes_tethers_frames_crcs_included() -> None:
    event = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}'
    decoder = EventStreamBuffer()
    decoder.add_data(
        chunk_frame(event) + exception_frame("modelStreamErrorException", "tether: killed")
    )
    chunk, failure = list(decoder)
    assert chunk.headers[":event-type"] == "chunk"
    assert chunk.to_response_dict()["status_code"] == 200
    assert orjson.loads(chunk.payload)["bytes"]
    failure_response = failure.to_response_dict()
    assert failure_response["status_code"] == 400
    assert failure.headers[":exception-type"] == "modelStreamErrorException"
    assert orjson.loads(failure.payload) == {"message": "tether: killed"}


def test_frames_cut_anywhere_come_out_whole_and_the_event_json_byte_for_byte() -> None:
    events = [b'{"type":"message_start","message":{"id":"m"}}', b'{"type":"message_stop"}']
    stream = b"".join(chunk_frame(e) for e in events)
    reader = FrameReader()
    frames = [
        frame for at in range(0, len(stream), 7) for frame in reader.feed(stream[at : at + 7])
    ]
    assert [chunk_event(f) for f in frames] == events
    assert reader.pending == 0


def test_the_codec_round_trip_gives_the_agent_the_frames_bedrock_sent() -> None:
    stream = chunk_frame(b'{"type":"message_start","message":{}}') + chunk_frame(
        b'{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":3}}'
    )
    tap = StreamTap()
    assert BedrockStreamCodec().read(tap, stream) == [stream]
    assert tap.started and tap.completed


def test_a_bad_crc_or_a_frame_past_the_limit_is_refused_not_buffered() -> None:
    frame = bytearray(chunk_frame(b'{"type":"ping"}'))
    frame[-1] ^= 0xFF
    with pytest.raises(EventStreamError, match="CRC"):
        FrameReader().feed(bytes(frame))
    prelude = struct.pack(">II", MAX_FRAME_BYTES + 1, 0)
    huge = prelude + struct.pack(">I", zlib.crc32(prelude))
    with pytest.raises(EventStreamError, match="claims"):
        FrameReader().feed(huge)
    tap = StreamTap()
    (broken,) = BedrockStreamCodec().read(tap, bytes(frame))
    assert tap.error is not None and "CRC" in tap.error
    decoder = EventStreamBuffer()
    decoder.add_data(broken)
    (failure,) = list(decoder)
    assert failure.headers[":exception-type"] == "internalServerException"
    assert b"CRC" in failure.payload


def test_every_cut_of_a_stream_and_every_event_relayed_alone_give_the_frames_back() -> None:
    """The reader reads whole frames in place and buffers only a frame cut across chunks;
    the codec hands back the frames as they came: wherever the stream is cut."""
    events = [
        b'{"type":"message_start","message":{"id":"m","usage":{"input_tokens":3}}}',
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}',
        b'{"type":"message_stop"}',
    ]
    frames = [chunk_frame(e) for e in events]
    stream = b"".join(frames)
    for cut in range(len(stream) + 1):
        reader = FrameReader()
        read = reader.feed(stream[:cut]) + reader.feed(stream[cut:])
        assert [f.raw for f in read] == frames, cut
        assert reader.pending == 0
    reader = FrameReader()
    assert [f.raw for b in range(len(stream)) for f in reader.feed(stream[b : b + 1])] == frames
    for cut in range(len(stream) + 1):
        codec, tap = BedrockStreamCodec(), StreamTap()
        relayed = codec.read(tap, stream[:cut]) + codec.read(tap, stream[cut:])
        assert b"".join(relayed) == stream, cut  # type: ignore[arg-type]
        assert tap.usage.input_tokens == 3 and tap.completed


def test_a_broken_frame_stays_broken_on_the_next_chunk() -> None:
    frame = bytearray(chunk_frame(b'{"type":"ping"}'))
    frame[-1] ^= 0xFF
    reader = FrameReader()
    with pytest.raises(EventStreamError, match="CRC"):
        reader.feed(bytes(frame))
    with pytest.raises(EventStreamError, match="CRC"):
        reader.feed(chunk_frame(b'{"type":"message_stop"}'))

"""tether's event-stream framing read by botocore's own decoder, and tether's reader
refusing what is not an event stream (bounded, never buffering a huge frame)."""

from __future__ import annotations

import struct
import zlib

import orjson
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
    reader = FrameReader()
    assert reader.feed(bytes(frame)) == []
    assert reader.broken is not None and "CRC" in str(reader.broken)
    assert (reader.pending, reader.unread) == (0, len(frame))
    prelude = struct.pack(">II", MAX_FRAME_BYTES + 1, 0)
    huge = prelude + struct.pack(">I", zlib.crc32(prelude))
    reader = FrameReader()
    assert reader.feed(huge) == [] and reader.pending == 0
    assert isinstance(reader.broken, EventStreamError) and "claims" in str(reader.broken)
    codec, tap = BedrockStreamCodec(), StreamTap()
    assert codec.read(tap, bytes(frame)) == [], "the relay ends the stream, not the codec"
    assert codec.broken is not None and "corrupt event-stream frame" in codec.broken
    assert "CRC" in codec.broken and tap.error is None
    assert tap.output_tokens == -(-len(frame) // 3), "the unreadable bytes count as output"


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


def test_the_frames_before_a_corrupt_one_are_read_and_nothing_after_it() -> None:
    """Nothing says where a frame starts after a corrupt one: the reading ends there."""
    before = [chunk_frame(b'{"type":"message_start","message":{}}'), chunk_frame(b"{}")]
    corrupt = bytearray(chunk_frame(b'{"type":"ping"}'))
    corrupt[8] ^= 0xFF  # the prelude's CRC
    after = chunk_frame(b'{"type":"message_stop"}')
    reader = FrameReader()
    read = reader.feed(b"".join(before) + bytes(corrupt) + after[:5])
    assert [f.raw for f in read] == before
    assert "prelude CRC" in str(reader.broken)
    assert reader.unread == len(corrupt) + 5 and reader.pending == 0
    assert reader.feed(after[5:]) == [], "a later chunk is not read as frames again"
    assert reader.unread == len(corrupt) + len(after)


def test_a_corrupt_frame_is_read_once_whatever_follows_it() -> None:
    """A corrupt frame and 20,000 chunks after it (80 MB): each later chunk costs
    nothing, and nothing is kept. It was parsed again at every chunk, with every byte
    since: 17 s for 2,000 chunks of 4 KB, 13 ms a chunk at the end and growing, the
    buffer holding all of it, and one exception frame for the agent per chunk."""
    corrupt = bytearray(chunk_frame(b'{"type":"ping"}'))
    corrupt[-1] ^= 0xFF
    delta = chunk_frame(
        b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"'
        + b"x" * 4000
        + b'"}}'
    )
    codec, tap = BedrockStreamCodec(), StreamTap()
    first = codec.read(tap, chunk_frame(b'{"type":"message_start","message":{}}'))
    assert first and tap.started
    assert codec.read(tap, bytes(corrupt) + delta) == []
    broken, counted = codec.broken, tap.output_tokens
    for _ in range(20_000):
        assert codec.read(tap, delta) == []
        assert codec._reader.pending == 0, "nothing kept to be read again"
    assert codec.broken == broken
    assert tap.output_tokens == counted, "counted once, when the stream broke"

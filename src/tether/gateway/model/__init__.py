"""What every model front door shares: one model call, decided, forwarded and settled.

The Messages door, the Bedrock door and the Vertex door differ only in their wire
(``ModelWire``): where the call goes and how it is signed, how its stream is framed and
how a refusal looks. Everything else — the action, the pipeline, tool calls held until
judged, output covered as it streams, settlement — is ``ModelCalls``.
"""

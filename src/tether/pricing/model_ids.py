"""Claude's model ids as the clouds spell them, brought back to the Anthropic API's.

Amazon Bedrock names ``anthropic.claude-opus-4-1-20250805-v1:0``, inference profiles
``us.anthropic.…`` / ``global.anthropic.…`` and their ARNs; Google Vertex AI names
``claude-opus-4-1@20250805``. Prices and policies are written once, for
``claude-opus-4-1-20250805``.
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["canonical_model_id"]

_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")
_GEOGRAPHIES = frozenset({"us", "eu", "apac", "global", "jp", "au", "ca", "us-gov", "uk"})


def canonical_model_id(model: str) -> str:
    """``us.anthropic.claude-opus-5-5-v1:0`` → ``claude-opus-5-5``; ids already in the
    Anthropic form come back unchanged."""
    if not model or ("." not in model and "@" not in model and ":" not in model):
        return model
    return _cloud_model_id(model)


@lru_cache(maxsize=1024)
def _cloud_model_id(model: str) -> str:
    """A cloud's spelling mapped (a model call maps its id more than once, and a fleet
    uses a handful of ids: each is mapped once)."""
    if model.startswith("arn:"):
        model = model.rsplit("/", 1)[-1]
    head, dot, rest = model.partition(".")
    if dot and head in _GEOGRAPHIES:
        model = rest
    if model.startswith("anthropic."):
        model = model[len("anthropic.") :]
        model = _BEDROCK_VERSION.sub("", model)
    name, at, date = model.partition("@")
    if at:
        model = f"{name}-{date}" if date and date != "latest" and date != "default" else name
    return model

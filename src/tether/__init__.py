"""tether: a self-hosted control plane for AI agents on the Anthropic API."""

__version__ = "0.1.0"
__all__ = ["__version__"]

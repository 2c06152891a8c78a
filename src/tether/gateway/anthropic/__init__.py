"""The Anthropic Messages front door: a wire-compatible proxy for Claude Code and the SDKs."""

"""Connecting agents to tether: the settings Claude Code and the Agent SDK need, merged
into what is already there."""

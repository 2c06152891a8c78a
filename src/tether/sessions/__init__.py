"""Agent sessions: lookup on the hot path, state changes from any replica."""

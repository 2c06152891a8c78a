"""Claude Code's HTTP hooks as a front door: PreToolUse asks, PostToolUse records."""

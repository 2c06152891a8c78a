"""The AWS front door: agents call AWS through tether with a per-agent key pair; tether
verifies SigV4, turns the call into actions, and re-signs allowed calls with the
project's real credential."""

"""Who is calling: agent keys, admin tokens and the in-memory directory of agents."""

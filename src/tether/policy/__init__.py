"""Cedar policies: what an agent may touch, compiled once per version, evaluated per action."""

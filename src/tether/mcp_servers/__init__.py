"""Remote MCP servers reached through tether: their registry, credentials and pins."""

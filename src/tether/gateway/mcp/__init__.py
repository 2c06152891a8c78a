"""The MCP front door: tether's task tools over streamable HTTP at ``/mcp``."""

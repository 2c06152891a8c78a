"""The MCP server door: ``/mcp/servers/NAME`` relays MCP Streamable HTTP to a project's
registered upstream server, holding its credential and putting every call through the
pipeline."""

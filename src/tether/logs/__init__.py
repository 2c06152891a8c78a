"""The server's logs: configuration, the access log and who a request acted for."""

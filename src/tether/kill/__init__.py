"""The kill switch: stop a session, an agent, a project or the fleet, streams included."""

"""HTTP plumbing shared by every front door and the admin API."""

"""The operator dashboard at ``/ui``: server-rendered pages over the admin API."""

from tether.dashboard.app import mount_dashboard

__all__ = ["mount_dashboard"]

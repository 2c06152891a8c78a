"""The admin REST API under ``/admin/v1``: admin tokens only, every call audited."""

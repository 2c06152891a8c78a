"""The ``tether`` command: drives the admin API over HTTP, and runs the server (``tether up``)."""

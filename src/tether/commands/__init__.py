"""What a shell command does, as actions on resources: ``aws s3 rb s3://x`` is
``s3:DeleteBucket`` on ``arn:aws:s3:::x``. Used by the Claude Code hook front door and by
``tether policy probe``."""

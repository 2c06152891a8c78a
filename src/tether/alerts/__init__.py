"""Alerts: budget threshold crossings, delivered to Slack-compatible and signed webhooks."""

"""Slack interactivity: approval buttons decided where people already are."""

"""Budgets: hard limits per project, agent and session, reserved before and settled after."""

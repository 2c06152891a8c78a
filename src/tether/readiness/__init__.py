"""Readiness: is a project set up to use tether's controls, and do they work today."""

from tether.readiness.checks import CheckResult, Status, assess_project

__all__ = ["CheckResult", "Status", "assess_project"]

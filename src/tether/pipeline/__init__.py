"""The one pipeline every front door calls: Action in, Decision out, audited."""

from tether.pipeline.action import Action, Context, Decision, Deny, Pending, Verdict
from tether.pipeline.outcome import Outcome, ToolResult, ToolUse
from tether.pipeline.pipeline import Pipeline, Settles, Stage

__all__ = [
    "Action",
    "Context",
    "Decision",
    "Deny",
    "Outcome",
    "Pending",
    "Pipeline",
    "Settles",
    "Stage",
    "ToolResult",
    "ToolUse",
    "Verdict",
]

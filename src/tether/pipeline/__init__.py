"""The one pipeline every front door calls: Action in, Decision out, audited."""

from tether.pipeline.action import Action, Context, Decision, Deny, Pending, Verdict
from tether.pipeline.pipeline import Pipeline, Stage

__all__ = ["Action", "Context", "Decision", "Deny", "Pending", "Pipeline", "Stage", "Verdict"]

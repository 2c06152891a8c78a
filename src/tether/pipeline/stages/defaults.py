"""The order of the stages, in one place."""

from __future__ import annotations

from tether.identity.directory import Directory
from tether.kill.switch import KillSwitch
from tether.pipeline.pipeline import Stage
from tether.pipeline.stages.approval import RequireApproval
from tether.pipeline.stages.budget import ReserveBudget
from tether.pipeline.stages.guards import EnforceGuards
from tether.pipeline.stages.identify import IdentifyAgent
from tether.pipeline.stages.kill_switch import EnforceKillSwitch
from tether.pipeline.stages.mcp_breaker import BreakMcpCircuits
from tether.pipeline.stages.mcp_tools import EnforceToolPins
from tether.pipeline.stages.policy import EnforcePolicy
from tether.pipeline.stages.session import OpenSession
from tether.pipeline.stages.usage import MeterUsage
from tether.policy.book import PolicyBook
from tether.pricing.prices import PriceTable
from tether.sessions.registry import SessionRegistry
from tether.store.approvals import ApprovalStore

__all__ = ["default_stages"]


def default_stages(
    directory: Directory,
    sessions: SessionRegistry,
    switch: KillSwitch,
    prices: PriceTable,
    budgets: ReserveBudget,
    policies: PolicyBook,
    approvals: ApprovalStore,
    guards: EnforceGuards,
    task_context: Stage,
    tool_pins: EnforceToolPins,
) -> list[Stage]:
    """Settlement runs in the same order: MeterUsage prices the call before ReserveBudget
    charges it. ``task_context`` (KeepTaskInView) never refuses on purpose; it comes after
    the controls that decide whether a call may go (kill, guards, policy, approval) and
    before the budget holds anything, so a store failure there (a deny: failing closed)
    leaves nothing reserved."""
    return [
        IdentifyAgent(directory),
        OpenSession(sessions),
        EnforceKillSwitch(switch),
        tool_pins,
        BreakMcpCircuits(),
        guards,
        EnforcePolicy(policies),
        RequireApproval(approvals),
        task_context,
        MeterUsage(prices, sessions),
        budgets,
    ]

"""The data that flows through the pipeline: what was asked, what stages found, what was decided."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tether.audit.event import AuditEvent
from tether.errors import status_for
from tether.identity.directory import AgentIdentity
from tether.pipeline.outcome import ToolResult, ToolUse
from tether.records.fleet import SessionRecord
from tether.records.verdicts import Deny, Pending, Verdict
from tether.redaction.text import redact_text

__all__ = [
    "Action",
    "CallReads",
    "Context",
    "CostBasis",
    "Decision",
    "Deny",
    "HeldObservations",
    "Pending",
    "Unwritten",
    "Verdict",
]


class Unwritten(Protocol):
    """A write under way that a decision depends on (``SqliteWriter.queue``): ``result``
    returns once it is committed, or raises."""

    def result(self) -> Awaitable[object]: ...


@dataclass(frozen=True, slots=True)
class CostBasis:
    """What a front door knows of an action's price before it happens (model calls)."""

    model: str
    input_tokens_estimate: int
    max_output_tokens: int
    stream: bool = False
    """Streamed output is covered as it comes; a whole answer is covered up front."""
    thinking_budget: int = 0
    parts: tuple[CostBasis, ...] = ()
    """A message batch's requests: reserved together, each at its worst case (its input
    estimate and whole ``max_tokens`` at its model's price), as one decision."""


@dataclass(slots=True)
class Action:
    """What an agent wants to do, as a front door understood it from its protocol."""

    source: str
    credential: str | None
    action: str
    resource: str
    session_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    cost_basis: CostBasis | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """The resource's tags as the front door knows them; policies scope by them."""
    fingerprint: int | None = None
    """What makes two such calls the same for the repeat guard (default: action + resource)."""
    understood: bool = True
    """False when the front door could not tell what the action does (an unparseable
    shell command): unless a policy names it, the project's default applies."""
    tool_use: ToolUse | None = None
    """The tool call this action is part of (hooks): the guards count its repeats."""
    tool_results: list[ToolResult] = field(default_factory=list)
    """Tool answers this call carries: a Messages request's new ``tool_result`` blocks, a
    PostToolUse hook's response."""
    conversation: str | None = None
    """For callers that name no session: a digest of what stays fixed in their
    conversation (system prompt, first message), so its calls share one session."""
    unmapped: str | None = None
    """Why the front door could not tell which resource this call acts on (an AWS
    operation it cannot map): the policy stage denies it, whatever the policy permits."""
    too_complex: str | None = None
    """Why the front door would not read this call in full (a command past the parser's
    limits): the policy stage denies it with ``command_too_complex``, whatever the policy."""
    join_latest_session: bool = False
    """For callers that name no session (AWS SDK calls): join the agent's latest active
    session, else the session of ``conversation``."""
    session_optional: bool = False
    """An observation that starts no session: with none named and no latest one, it is
    recorded under the agent alone (an MCP client's ``initialize``, sent before the first
    model call opens the session it belongs to)."""
    arguments: dict[str, str] = field(default_factory=dict)
    """A tool call's arguments as strings (MCP tools): ``context.arguments`` in a policy."""
    destructive: bool = False
    """The tool says it destroys (MCP ``destructiveHint``): a deletion, whatever its name."""
    call_reads: CallReads | None = None
    """While the actions of one call are previewed together (``decide_as_one``), what
    they share: a stage may read once for all of them."""


@dataclass(eq=False, slots=True)
class CallReads:
    """Reads made once for all the actions of one call while they are previewed (a
    ``DeleteObjects`` of 1,000 keys asked the approvals table twice a key), by the stage's
    own key. For a preview only: a decision reads what it acts on again."""

    actions: list[Action]
    reads: dict[object, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What stages learned on the way; later stages read what earlier ones set."""

    identity: AgentIdentity | None = None
    session: SessionRecord | None = None
    reservation: Any = None
    """The budget reservation held for this action, settled after it (see ReserveBudget)."""
    allowed_because: str | None = None
    """Why the action may go ahead (the permitting policy, the approval used)."""
    approval_needed: str | None = None
    """Set by the policy stage when a rule says ``@ask``; the approval stage acts on it."""
    notes: dict[str, Any] = field(default_factory=dict)
    """Facts stages add to the decision's audit event (policy version, approval id)."""
    preview: bool = False
    """A look ahead (``Pipeline.preview``): stages must not spend or create anything."""
    output_token_cap: int | None = None
    """The most output the call may ask for (a budget pays for no more): the front door
    lowers the request's ``max_tokens`` to it."""
    output_covered: int | None = None
    """Output tokens paid for so far, when output must be covered as it streams
    (``Pipeline.cover_output``); None when all of it is."""
    task_context: str | None = None
    """The task block to put back into the agent's context (hooks' ``additionalContext``)."""
    system_addition: str | None = None
    """A block the Messages front door appends to the request's ``system`` (opt-in)."""
    hold_stop: str | None = None
    """Why the agent may not stop yet (a claimed batch not verified): a Stop hook blocks."""
    unwritten: list[Unwritten] = field(default_factory=list)
    """Writes stages started but did not wait for (a new session's row): the pipeline
    awaits them before a decision stands, and one that fails refuses the call."""


@dataclass(slots=True)
class HeldObservations:
    """Observations of a decided action's effect that wait for its settlement, to be
    written in the same commit as its outcome: each is written exactly once — with the
    outcome, or on its own when it comes after the settlement took them."""

    events: list[AuditEvent] = field(default_factory=list)
    settled: bool = False

    def hold(self, event: AuditEvent) -> bool:
        """False once settled: the caller writes ``event`` itself."""
        if self.settled:
            return False
        self.events.append(event)
        return True

    def take(self) -> list[AuditEvent]:
        """The held events, handed over once; later ones are not held."""
        self.settled = True
        taken, self.events = self.events, []
        return taken


@dataclass(frozen=True, slots=True)
class Decision:
    """The pipeline's answer; ``event_id`` names the durable audit event that records it."""

    result: str
    reason: str
    event_id: str
    code: str | None = None
    session_id: str | None = None
    agent_name: str | None = None
    project_name: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    action: Action | None = field(default=None, repr=False, compare=False)
    context: Context | None = field(default=None, repr=False, compare=False)
    held: HeldObservations = field(
        default_factory=lambda: HeldObservations(), repr=False, compare=False
    )
    """What was observed of the decided action's effect (a relayed tool answer), recorded
    with its outcome when it is settled."""

    def __post_init__(self) -> None:
        """The reason goes back to the agent: no credential in it (see ``Deny``)."""
        object.__setattr__(self, "reason", redact_text(self.reason))

    @property
    def output_token_cap(self) -> int | None:
        return self.context.output_token_cap if self.context else None

    @property
    def output_covered(self) -> int | None:
        return self.context.output_covered if self.context else None

    @property
    def system_addition(self) -> str | None:
        return self.context.system_addition if self.context else None

    @property
    def allowed(self) -> bool:
        return self.result == "allow"

    @property
    def pending(self) -> bool:
        return self.result == "pending"

    @property
    def approval_id(self) -> str | None:
        return self.evidence.get("approval_id") if self.pending else None

    @property
    def status(self) -> int:
        if self.result == "deny" and self.code:
            return status_for(self.code)
        return 202 if self.pending else 200

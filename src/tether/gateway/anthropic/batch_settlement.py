"""Settling a message batch's reservation to what its requests used, once: by the agent
reading its results, or by tether itself when a kill canceled it (the agent may never
read them then). Both go through the pipeline's settlement, so budgets, usage and the
audit trail are charged the one way every model call is."""

from __future__ import annotations

import orjson

from tether.budgets.batches import BatchReservations
from tether.identity.directory import AgentIdentity, Directory
from tether.pipeline import Action, Context, Decision, Outcome, Pipeline
from tether.pipeline.action import CostBasis
from tether.pricing.model_ids import canonical_model_id
from tether.pricing.usage import Usage
from tether.records.fleet import AgentKey, SessionRecord
from tether.records.message_batches import BatchRecord
from tether.web.lines import LineSplitter

__all__ = [
    "SYSTEM_SETTLEMENT",
    "BatchSettlement",
    "BatchTally",
    "batch_key",
    "system_decision",
]

SOURCE = "anthropic"
SYSTEM_SETTLEMENT = "system:batch-sweep"
"""The decision a settlement by tether itself refers to (no agent asked for it)."""


class BatchTally:
    """The usage of each succeeded request in a results stream, line by line (canceled,
    errored and expired requests are not billed)."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, Usage]] = []
        self._lines = LineSplitter()

    def feed_bytes(self, chunk: bytes) -> None:
        """Any piece of the stream (relayed as it comes, so not read line by line)."""
        for line in self._lines.feed(chunk):
            self.feed(line)

    def end(self) -> None:
        """The stream is over: a last line without its newline counts too."""
        last = self._lines.end()
        if last is not None:
            self.feed(last)

    def feed(self, line: bytes) -> None:
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            return
        result = row.get("result") if isinstance(row, dict) else None
        if not isinstance(result, dict) or result.get("type") != "succeeded":
            return
        message = result.get("message")
        if not isinstance(message, dict):
            return
        usage = Usage()
        usage.update(message.get("usage"))
        self.parts.append((canonical_model_id(str(message.get("model", ""))), usage))


def owner_identity(record: BatchRecord, directory: Directory) -> AgentIdentity | None:
    """The batch's agent and project as they stand (None once either is gone)."""
    agent = directory.agent(record.agent_id)
    project = directory.project(record.project_id)
    if agent is None or project is None:
        return None
    return AgentIdentity(agent=agent, project=project, key=batch_key(record))


def system_decision(
    record: BatchRecord,
    identity: AgentIdentity,
    session: SessionRecord | None,
    reason: str = "tether settles a message batch a kill canceled",
) -> Decision:
    """What a settlement by tether stands on: the batch's agent, project and session as
    the decision that created it saw them, taken by no one."""
    action = Action(
        source=SOURCE,
        credential=None,
        action="model:batches",
        resource=f"anthropic:batch/{record.id}",
        session_id=record.session_id,
    )
    return Decision(
        result="allow",
        reason=reason,
        event_id=SYSTEM_SETTLEMENT,
        session_id=record.session_id,
        agent_name=identity.agent.name,
        project_name=identity.project.name,
        action=action,
        context=Context(identity=identity, session=session),
    )


def batch_key(record: BatchRecord) -> AgentKey:
    """No agent key presented: the settlement names the batch instead."""
    return AgentKey(
        id=SYSTEM_SETTLEMENT,
        agent_id=record.agent_id,
        key_hash=SYSTEM_SETTLEMENT,
        prefix="system",
        created_at=record.created_at,
        expires_at=None,
        revoked_at=None,
    )


class BatchSettlement:
    def __init__(
        self,
        pipeline: Pipeline,
        reservations: BatchReservations,
        directory: Directory | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._reservations = reservations
        self._directory = directory

    async def settle(
        self, batch_id: str, decision: Decision, tally: BatchTally, how: str
    ) -> Decision | None:
        """Settle ``batch_id``'s reservation to ``tally`` (at the batch price) on
        ``decision``, or on the batch's own agent and session when another agent read
        the results (the batch's cost is its maker's); the decision it settled on, None
        when it was settled already (by another reader or replica)."""
        record = await self._reservations.find(batch_id)
        if record is None or record.settled_at is not None:
            return None
        reader = decision.context.identity if decision.context else None
        if reader is not None and reader.agent.id != record.agent_id:
            owners = await self._owners_decision(record)
            if owners is not None:
                how = f"{how}: {reader.agent.name}, for the agent that made it"
                decision = owners
        ctx = decision.context
        assert ctx is not None and decision.action is not None
        total = Usage()
        for _, part in tally.parts:
            for name, value in part.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
        outcome = Outcome(
            result="ok",
            status=200,
            latency_ms=0.0,
            model=record.models[0] if record.models else None,
            usage=total,
            part_usages=tally.parts,
            detail=f"message batch {batch_id}: {len(tally.parts)} requests succeeded; {how}",
        )
        if not await self._reservations.claim_settlement(batch_id, 0):
            return None
        if record.reservation_id is not None:
            ctx.reservation = self._reservations.rebuilt(record.reservation_id, record.holds)
        else:
            ctx.reservation = None
        decision.action.cost_basis = CostBasis(
            model=outcome.model or "", input_tokens_estimate=0, max_output_tokens=0
        )
        await self._pipeline.settle(decision, outcome)
        return decision

    async def _owners_decision(self, record: BatchRecord) -> Decision | None:
        """The batch's own agent and session to settle on (None: its agent or project is
        gone, or no directory was given; the reader's decision stands then)."""
        owner = owner_identity(record, self._directory) if self._directory else None
        if owner is None:
            return None
        session = await self._reservations.session_of(record)
        reason = "tether settles a message batch another agent read the results of"
        return system_decision(record, owner, session, reason)

"""Client addresses per agent key and hour, on SQLite and PostgreSQL: uses and switches
add up across flushes (and replicas), hours past the keeping time are removed."""

from __future__ import annotations

from tether.clock import now_ms
from tether.store.database import Database
from tether.store.key_addresses import HOUR_MS, KEEP_MS, AddressUse, KeyAddressStore


async def test_uses_add_up_and_old_hours_go(db: Database) -> None:
    store = KeyAddressStore(db)
    hour = now_ms() - now_ms() % HOUR_MS
    old = hour - KEEP_MS - HOUR_MS
    await store.add({AddressUse("k1", old, "10.0.0.9"): (1, 1), AddressUse("k2", old, "a"): (1, 0)})
    await store.add({AddressUse("k1", hour, "10.0.0.1"): (3, 0)})
    assert await store.shared_hours(["k1", "k2"], old) == []  # the old hour was removed
    await store.add(
        {AddressUse("k1", hour, "10.0.0.1"): (2, 1), AddressUse("k1", hour, "10.0.0.2"): (4, 2)}
    )
    [shared] = await store.shared_hours(["k1", "k2"], hour - HOUR_MS)
    assert (shared.key_id, shared.hour, shared.addresses, shared.switches) == ("k1", hour, 2, 3)
    assert await store.addresses("k1", hour) == ["10.0.0.1", "10.0.0.2"]
    assert await store.shared_hours([], hour) == []

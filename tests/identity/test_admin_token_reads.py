"""An admin token read from the store the first time it is used, while another replica
revokes it: the revocation the change feed brings meanwhile is not undone by the older row
that read comes back with."""

from __future__ import annotations

import asyncio

from tests.support.databases import PG_HOST, PG_PORT
from tests.support.tcp_proxy import CuttableProxy
from tether.identity.directory import Directory
from tether.records.fleet import Role
from tether.store.admin_tokens import AdminTokenStore
from tether.store.agents import AgentStore
from tether.store.changes import Change
from tether.store.database import Database
from tether.store.projects import ProjectStore
from tether.vault.bearer import hash_secret


async def test_a_token_revoked_while_it_is_first_read_is_refused(postgres_url: str) -> None:
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    here = Database(postgres_url.replace(f":{PG_PORT}/", f":{proxy.port}/"))
    there = Database(postgres_url)
    try:
        directory = Directory(ProjectStore(here), AgentStore(here), AdminTokenStore(here))
        await directory.load()
        _, secret = await AdminTokenStore(there).create("ops", Role.ADMIN)

        proxy.hold_reply_to(hash_secret(secret).encode(), 1.5)
        first_use = asyncio.create_task(directory.identify_admin(secret))
        assert await asyncio.to_thread(proxy.fault_taken.wait, 10), "the token was not read"
        await AdminTokenStore(there).revoke("ops")
        await directory.apply(Change(0, "admin_token", "ops"))

        assert await first_use is None, "the read from before the revocation was kept"
        assert await directory.identify_admin(secret) is None
    finally:
        await here.dispose()
        await there.dispose()
        proxy.close()

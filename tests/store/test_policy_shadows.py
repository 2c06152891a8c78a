"""The shadow policy table: one per project, replaced, cleared, promoted in one step."""

from __future__ import annotations

import pytest

from tether.errors import NotFound
from tether.store.database import Database
from tether.store.policies import PolicyStore
from tether.store.policy_shadows import PolicyShadowStore
from tether.store.projects import ProjectStore

FIRST = "permit(principal, action, resource);"
SECOND = 'forbid(principal, action == Action::"s3:DeleteBucket", resource);'


async def test_a_project_has_one_shadow_and_promoting_it_makes_the_next_version(
    db: Database,
) -> None:
    project = await ProjectStore(db).create("p")
    policies, shadows = PolicyStore(db), PolicyShadowStore(db)
    await policies.add(project.id, FIRST, "admin:a")
    first = await shadows.put(project.id, FIRST, "admin:a")
    second = await shadows.put(project.id, SECOND, "admin:b")
    assert await shadows.all() == [second]
    assert first.sha256 != second.sha256

    with pytest.raises(NotFound, match="replaced or cleared"):
        await shadows.promote(project.id, first.sha256, "admin:a")
    assert (await policies.current(project.id)).version == 1  # type: ignore[union-attr]

    version = await shadows.promote(project.id, second.sha256, "admin:b")
    assert (version.version, version.source, version.created_by) == (2, SECOND, "admin:b")
    assert await policies.current(project.id) == version
    assert await shadows.get(project.id) is None
    assert not await shadows.clear(project.id)

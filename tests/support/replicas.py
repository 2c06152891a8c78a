"""Two replicas on one PostgreSQL database, one of them reaching it through a forwarder
that can hold a reply up: for races between a replica's own change and its change feed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.databases import PG_HOST, PG_PORT, postgres_database
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether, start_tether
from tests.support.tcp_proxy import CuttableProxy

__all__ = ["start_here_and_there"]


@contextmanager
def start_here_and_there(
    tmp_path: Path, upstream: RunningFake
) -> Iterator[tuple[RunningTether, RunningTether, CuttableProxy]]:
    """``here`` reaches the database through the forwarder, ``there`` directly."""
    proxy = CuttableProxy(PG_HOST, PG_PORT).start()
    with postgres_database(migrated=True) as url:
        try:
            here = start_tether(
                tmp_path / "here",
                url.replace(f":{PG_PORT}/", f":{proxy.port}/"),
                anthropic_base_url=upstream.url,
            )
            try:
                there = start_tether(
                    tmp_path / "there",
                    url,
                    anthropic_base_url=upstream.url,
                    bootstrap_admin_token=here.admin_token,
                )
                try:
                    yield here, there, proxy
                finally:
                    there.stop()
            finally:
                here.stop()
        finally:
            proxy.close()

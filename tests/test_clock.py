"""Ids as the store records them (``tether.clock``): unique across threads and across
forked workers, sortable by age, in their documented shapes."""

from __future__ import annotations

import multiprocessing
import re
import threading
from concurrent.futures import ThreadPoolExecutor

from tether.clock import new_id, new_uuid7, now_ms

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_ids_made_by_many_threads_at_once_never_repeat() -> None:
    start = threading.Barrier(8)

    def make(count: int) -> list[str]:
        start.wait()
        return [new_id() for _ in range(count)]

    with ThreadPoolExecutor(8) as pool:
        ids = [i for made in pool.map(make, [5_000] * 8) for i in made]
    assert len(set(ids)) == len(ids) == 40_000
    assert all(len(i) == 32 and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_an_id_starts_with_the_millisecond_it_was_made() -> None:
    before = now_ms()
    made = new_id()
    after = now_ms()
    assert before <= int(made[:12], 16) <= after


def test_uuid7s_have_the_rfc_9562_shape_and_sort_by_age() -> None:
    made = [new_uuid7() for _ in range(2_000)]
    assert all(UUID7.fullmatch(u) for u in made)
    assert len(set(made)) == len(made)
    times = [int(u.replace("-", "")[:12], 16) for u in made]
    assert times == sorted(times)


def _ids_in_child(queue: multiprocessing.Queue[list[str]]) -> None:
    queue.put([new_id()[12:] for _ in range(50)])


def test_a_forked_worker_does_not_hand_out_its_parents_next_digits() -> None:
    new_id()  # the parent has a buffer under way when it forks
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[list[str]] = context.Queue()
    child = context.Process(target=_ids_in_child, args=(queue,))
    child.start()
    childs = queue.get(timeout=30)
    child.join(30)
    parents = [new_id()[12:] for _ in range(50)]
    assert not set(childs) & set(parents)

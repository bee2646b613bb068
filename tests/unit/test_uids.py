"""apiserver.uids: random version-4 UUID texts from a pooled random source, never repeated across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from apiserver import uids


def test_uids_are_canonical_version_4_uuids() -> None:
    for _ in range(600):  # more than one pool's worth
        text = uids.new_uid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_uids_do_not_repeat() -> None:
    drawn = [uids.new_uid() for _ in range(5000)]
    assert len(set(drawn)) == len(drawn)


def test_a_forked_child_draws_other_uids_than_its_parent() -> None:
    uids.new_uid()  # the parent holds a partly used pool when it forks
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next uids and leave at once
        try:
            os.write(write_end, ",".join(uids.new_uid() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = set(pipe.read().decode().split(","))
    os.waitpid(pid, 0)
    parent = {uids.new_uid() for _ in range(8)}
    assert len(child) == 8
    assert not child & parent


def test_threads_drawing_at_once_never_share_a_uid() -> None:
    drawn: list[list[str]] = [[] for _ in range(4)]

    def draw(into: list[str]) -> None:
        for _ in range(3000):
            into.append(uids.new_uid())

    threads = [threading.Thread(target=draw, args=(into,)) for into in drawn]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [uid for into in drawn for uid in into]
    assert len(set(every)) == len(every) == 12000

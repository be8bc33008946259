"""Generated IDs: cheap (no system call per ID) and still what they claim to be, in every forked worker."""

from __future__ import annotations

import os
import re
import uuid

from trackline.policy import random_uuid4
from trackline.tracecontext import new_span_id, random_trace_id


def test_generated_tracking_ids_are_valid_uuid4s() -> None:
    ids = [random_uuid4() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    for value in ids[:2000]:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant, str(parsed)) == (4, uuid.RFC_4122, value)


def test_span_and_trace_ids_are_lowercase_hex_of_their_length() -> None:
    assert all(re.fullmatch(r"[0-9a-f]{16}", new_span_id()) for _ in range(2000))
    assert all(re.fullmatch(r"[0-9a-f]{32}", random_trace_id()) for _ in range(2000))


def test_forked_workers_draw_different_ids_from_each_other_and_from_the_master() -> None:
    """gunicorn forks its workers from one master: each must get its own sequence of IDs."""
    reads = []
    for _ in range(2):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a worker
            os.write(write, (random_uuid4() + new_span_id()).encode())
            os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        reads.append(os.read(read, 100).decode())
        os.close(read)
    master = random_uuid4() + new_span_id()
    assert len({*reads, master}) == 3

"""The memory that the uploads in hand may take at once in ``bpnet serve``, bodies and decoding.

A request reserves what its body will take before reading it, then, from the width × height its
image's header declares (``declared_size``, before any decoder runs), the estimated peak of
reading and preprocessing it (``decode_bytes``); it gives everything back once answered. The
reservations of all connections together never pass the budget: a request that does not fit
waits up to QUEUE_SECONDS for others to finish, then is answered 503 with ``Retry-After``; one
that needs more than the whole budget alone is refused at once (413). The server's memory is
then its idle size plus at most the budget, however many hostile uploads arrive at once.
"""

from __future__ import annotations

import threading
import time
from http import HTTPStatus

from bpnet.apps.serve import RequestError
from bpnet.base.limits import limit
from bpnet.base.text import human
from bpnet.data.images import declared_size

DECODE_MEMORY = 1024**3  # bytes the uploads in hand may take at once (bpnet serve --decode-memory)
QUEUE_SECONDS = 2.0  # how long a request may wait for room in the budget before a 503
# Peak bytes of read_image_bytes + mnist_preprocess per declared pixel: measured 32 for most
# PNG/JPEG/PGM/NPY modes (535 MB for 4096x4096) and 40 at most (an RGBA PNG with transparency:
# 664 MB); 48 leaves a margin. An ASCII PGM (P2) also costs about 8.5 bytes per byte of its
# body whatever size it declares (its numbers are parsed as a whole): 545 MB for 64 MB.
PIXEL_BYTES = 48
BODY_BYTES = {"P2": 10}  # per byte of the body, beyond the body itself
JSON_BYTES = 32  # per byte of a JSON body: Python's objects for what it parses


def decode_bytes(raw):
    """Estimated peak bytes of reading and preprocessing image bytes ``raw`` (the bytes
    themselves included), from their header alone."""
    size = declared_size(raw)
    if size is None or size[1] * size[2] > limit("image_pixels"):
        return len(raw)  # refused by the reader from its header, before it allocates
    kind, width, height = size
    return len(raw) * (1 + BODY_BYTES.get(kind, 0)) + width * height * PIXEL_BYTES


class Budget:
    """``total`` bytes shared by every request; ``reserve()`` holds a share of it."""

    def __init__(self, total=DECODE_MEMORY, wait=QUEUE_SECONDS):
        self.total, self.wait, self.used = total, wait, 0
        self._room = threading.Condition()

    def reserve(self):
        """A Reservation of nothing yet, to ``need()`` more of; used as a context manager,
        it gives back what it holds on leaving."""
        return Reservation(self)


class Reservation:
    def __init__(self, budget):
        self.budget, self.held = budget, 0
        self.deadline = time.monotonic() + budget.wait

    def need(self, n, what):
        """Hold ``n`` bytes in all (``what`` needs them, named in a refusal): waits for room
        until the reservation's deadline, then RequestError 503; 413 at once when ``n`` is
        more than the whole budget."""
        budget, extra = self.budget, n - self.held
        if extra <= 0:
            return
        if n > budget.total:
            raise RequestError(
                f"{what} needs about {human(n)} of memory, more than the {human(budget.total)} "
                f"this server gives the uploads in hand (bpnet serve --decode-memory)",
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            )
        with budget._room:
            while budget.used + extra > budget.total:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise RequestError(
                        f"busy: the uploads in hand take {human(budget.used)} of the "
                        f"{human(budget.total)} of memory this server gives them, and {what} "
                        f"needs about {human(n)}; try again",
                        HTTPStatus.SERVICE_UNAVAILABLE,
                        {"Retry-After": "1"},
                    )
                budget._room.wait(left)
            budget.used += extra
            self.held = n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        budget = self.budget
        with budget._room:
            budget.used -= self.held
            self.held = 0
            budget._room.notify_all()

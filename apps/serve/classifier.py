"""The network behind ``bpnet serve``: a digit in (a PNG's bytes or JSON pixels), its most
probable classes and the 28×28 input the network saw out, read and preprocessed as ``bpnet
predict`` reads a file; on request also the digit's forward and backward trace through the
network (``bpnet.apps.graph.trace``)."""

from __future__ import annotations

import json
import threading

import numpy as np

from bpnet.apps.graph.trace import Tracer, trace_memory
from bpnet.apps.serve import RequestError
from bpnet.data.images import SIDE, load_digit, mnist_preprocess
from bpnet.errors import InputError
from bpnet.nn.evaluate import check_digit_input, input_scale, to_input, top_classes
from bpnet.training.weights import network_from_weights


class Classifier:
    """The network of a weights file, answering one digit at a time (the layers keep what
    ``forward`` saw, so concurrent requests take turns)."""

    def __init__(self, weights):
        self.net, self.meta = network_from_weights(weights)
        check_digit_input(self.net, weights)
        self.scale = input_scale(self.meta["normalize"])
        self.classes = self.net.output_size
        self.trace_bytes = trace_memory(self.net)  # what one trace may take at its peak
        self._lock = threading.Lock()
        self._tracer = None  # the network's layers in float64, made at the first trace

    def answer(self, digit, top=3, trace=None):
        """{"top": …, "input": …} for a preprocessed digit (28, 28) 0..255; with ``trace`` (a
        dict ``{"target": class or None}``) also "trace": the digit's forward and backward
        pass, the loss taken against that class (None: the predicted one)."""
        with self._lock:
            best = top_classes(self.net, digit[None], self.scale, top)[0]
            if trace is not None and self._tracer is None:
                self._tracer = Tracer(self.net)
        out = {"top": best, "input": np.round(digit, 1).tolist()}
        if trace is not None:  # the tracer's own lock: traces take turns, predictions go on
            x = to_input(digit[None], self.scale, np.float64)[0]
            out["trace"] = self._tracer.trace(x, trace.get("target"))
        return out

    def from_bytes(self, raw, top=3, name="image body", trace=None):
        """Image bytes of any format ``bpnet predict`` reads, told by their first bytes
        (``name`` names them in errors)."""
        return self.answer(load_digit(name, raw), top, trace)

    def from_json(self, raw, top=3, trace=None):
        """``{"pixels": 28×28 numbers 0..255}``, preprocessed as ``predict`` does an image
        unless ``"preprocess": false`` (then the pixels are the network's input as they are)."""
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as e:
            raise RequestError(f"JSON body: not valid JSON ({e})") from None
        if not isinstance(doc, dict) or "pixels" not in doc:
            raise RequestError('JSON body: expected an object {"pixels": 28x28 grey levels}')
        try:
            pixels = np.array(doc["pixels"], dtype=np.float64)
        except (ValueError, TypeError):
            raise RequestError("JSON body: pixels must be 28 rows of 28 numbers") from None
        if pixels.shape != (SIDE, SIDE):
            raise RequestError(
                f"JSON body: pixels of shape {pixels.shape}, expected ({SIDE}, {SIDE})"
            )
        if not np.all(np.isfinite(pixels)) or pixels.min() < 0 or pixels.max() > 255:
            raise RequestError("JSON body: pixels must be finite grey levels 0..255")
        if doc.get("preprocess", True) is False:
            return self.answer(pixels, top, trace)
        try:
            return self.answer(mnist_preprocess(pixels), top, trace)
        except InputError as e:
            raise RequestError(f"JSON body: {e}") from None

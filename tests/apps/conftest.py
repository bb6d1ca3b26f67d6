"""Fixtures of the app tests: ``weights``, a small good weights file (``write_good_weights``),
and ``server``, a real ``bpnet serve`` of it; one of each per module. A module that needs
other weights or server options (a trained network, a lower image limit) defines its own."""

import pytest
from hostile import write_good_weights
from servers import Server


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return write_good_weights(tmp_path_factory.mktemp("good") / "weights.npz")


@pytest.fixture(scope="module")
def server(bpnet_exe, weights):
    srv = Server(bpnet_exe, weights)
    yield srv
    srv.stop()

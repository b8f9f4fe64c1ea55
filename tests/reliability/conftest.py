"""Fixtures of the reliability suite; the helpers themselves live in rel_helpers.py."""

from __future__ import annotations

import pytest
from rel_helpers import Server


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.release.set()
    srv.httpd.shutdown()
    srv.httpd.server_close()

"""One real Request Tracker 5 for the test run (Debian's packages, SQLite, loopback).

Started on a free 127.0.0.1 port with its own state under a temporary directory the first
time a test asks for it, stopped by its PID when the run ends.  When RT is not installed
(``scripts/rt-up`` installs it) or does not start, the tests skip with the reason; with
``CI=true`` they fail instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI
from ticketbridge.adapters.rt.local import LocalRt, RtUnavailable, start_local_rt


@pytest.fixture(scope="session")
def live_rt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRt]:
    try:
        instance = start_local_rt(tmp_path_factory.mktemp("rt"))
    except RtUnavailable as exc:
        message = f"Request Tracker is not available: {exc}"
        if IN_CI:
            pytest.fail(message + "; CI=true requires it (scripts/rt-up installs it)")
        pytest.skip(message)
    try:
        yield instance
    finally:
        instance.stop()

"""Shared by every test package."""

import os

import pytest

SLOW_VARIABLE = "RAFT_SLOW"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only when asked for: ``RAFT_SLOW=1`` (``make
    faults``) or a ``-m`` expression that names them."""
    if os.environ.get(SLOW_VARIABLE) or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason=f"slow: run with make slow ({SLOW_VARIABLE}=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item, so fixtures that dump state
    # after a failure (cluster output, a browser screenshot) can see it.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True, scope="session")
def _events_written_in_the_test_thread():
    """A node writes a print's Logs line on the event handler's own thread
    (settings.LOGGING); in-process tests write it in the calling thread,
    where their database is: pytest-django refuses other threads."""
    import logging

    from consensus.eventlog import EventHandler

    for handler in logging.getLogger("raft").handlers:
        if isinstance(handler, EventHandler):
            handler.set_background(False)
    yield

"""Shared by every test package."""

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Keep each phase's report on the item, so fixtures that dump state
    # after a failure (cluster output, a browser screenshot) can see it.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report

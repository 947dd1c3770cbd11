"""Headless Chromium (Debian's package) driven by Playwright, against a real
cluster. Skips with the reason when either is missing; ``make test``
installs both (apt-get as root, pip from requirements.txt)."""

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Screenshots for a person to look at; artifacts/ is not committed.
SHOTS = ROOT / "artifacts" / "browser"
CHROMIUM = os.environ.get("RAFT_CHROMIUM", "/usr/bin/chromium")
# What these machines need to run Debian's chromium headless as root.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -r requirements.txt)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; or RAFT_CHROMIUM)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _skip_without_a_browser():
    """Skip before a module's other fixtures start a cluster for nothing
    (autouse fixtures of a scope come first)."""
    reason = _missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """A Chromium with a fresh profile (user data dir) for the module."""
    reason = _missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # Playwright's own browser download cannot work here: Debian's.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 860},
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def shoot():
    """shoot(page, name): a full-page screenshot in artifacts/browser/."""

    def take(page, name):
        path = SHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(autouse=True)
def _shoot_on_failure(request):
    """After a failed test, a screenshot of its page, to see what it saw."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is None or not report.failed or "page" not in request.fixturenames:
        return
    page = request.getfixturevalue("page")
    path = SHOTS / f"FAILED-{request.node.name}.png"
    try:
        page.screenshot(path=str(path), full_page=True)
        print(f"\nscreenshot of the failure: {path}\nURL: {page.url}")
    except Exception as exc:  # noqa: BLE001 - the failure itself matters more
        print(f"\nno screenshot of the failure: {exc}")

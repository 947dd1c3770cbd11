"""Fixtures for the fault runs: the seed, the namespace check, and removal of
what a run (or an earlier, killed run) left of the test network."""

import functools
import os
import random
import shutil

import pytest

from . import disks, netns

SEED_VARIABLE = "RAFT_FAULT_SEED"


def can_manage_network() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


@functools.cache
def netns_unavailable() -> str | None:
    return netns.unavailable_reason()


@pytest.fixture(scope="session", autouse=True)
def _remove_network_leftovers():
    """Namespaces, links, routes of earlier runs whose process has died;
    the network of a run still going (another pytest) is left alone."""
    if can_manage_network():
        removed = netns.cleanup_leftovers()
        if removed:
            print(f"removed leftovers of earlier fault runs: {removed}")
    if os.geteuid() == 0:
        unmounted = disks.cleanup_leftovers()
        if unmounted:
            print(f"unmounted lazyfs leftovers of earlier fault runs: {unmounted}")
    yield


@pytest.fixture
def fault_seed(request):
    """The run's seed: RAFT_FAULT_SEED, or a fresh one (always printed)."""
    value = os.environ.get(SEED_VARIABLE)
    seed = int(value) if value else random.SystemRandom().randrange(1, 2**31)
    request.node.user_properties.append(("fault_seed", seed))
    print(f"{request.node.name}: {SEED_VARIABLE}={seed}")
    return seed


@functools.cache
def lazyfs_unavailable() -> str | None:
    return disks.unavailable_reason()


@pytest.fixture
def lazyfs_disks():
    """Skip unless lazyfs mounts work here; afterwards, pass or fail,
    unmount any lazyfs mount this process still owns and fail if there was
    one."""
    reason = lazyfs_unavailable()
    if reason is not None:
        pytest.skip(f"power-cut tests skipped: {reason}")
    yield
    left = disks.owned_mounts()
    if left:
        for mountpoint in left:
            disks.unmount_quietly(mountpoint)
        pytest.fail(f"the run left lazyfs mounts behind (now unmounted): {left}")


@pytest.fixture
def network_namespaces():
    """Skip unless namespaces work here; afterwards, pass or fail, remove
    any namespace or link this process still owns and fail if there was one."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"namespace fault tests skipped: {reason}")
    yield
    left = netns.owned_by(os.getpid())
    if left:
        netns.remove(left)
        pytest.fail(f"the run left network objects behind (now removed): {left}")

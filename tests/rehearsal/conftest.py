"""Fixtures of the production-path rehearsal: the region (region.py: network, moto, registry) for the module.

The stack the Pulumi program renders and the nodes booted from its user-data are the test module's fixtures
(provision.py holds the steps, which bench/rehearsal_boot.py shares).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import region


def pytest_collection_modifyitems(items):
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.rehearsal)


# Module scope: the region holds the machine's stack lock, and this directory is no Python package, so a
# "package" fixture here would live until the session ends and every later stack test would wait on the lock.
@pytest.fixture(scope="module")
def cloud():
    if not region.assets_built():
        pytest.fail("the rehearsal's AMI stand-in and serving image are not built: run `make rehearsal-assets` "
                    "(part of `make test`)")
    with region.open_region() as c:
        yield c

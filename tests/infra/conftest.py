"""Pytest settings for the infra tests (the Pulumi mocks themselves are in infra_mocks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

# The helpers beside these tests (infra_mocks, infra_specs) import by name whatever the rootdir.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    # pulumi_aws's s3 module warns about its own deprecated aliases at import; not ours to act on.
    config.addinivalue_line("filterwarnings", r"ignore::DeprecationWarning:pulumi_aws\..*")

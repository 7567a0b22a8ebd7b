"""Pulumi entry point (Pulumi.yaml: `main: infra/`). The program lives in infra/stack.py."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for `infra` and `ops`

from infra.stack import main  # noqa: E402

main()

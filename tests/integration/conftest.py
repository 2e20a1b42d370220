"""Fixtures shared by the integration tests. The helpers live in tests/lib (pomelo.py,
harness.py); this puts them on the import path and wires the end-of-test checks."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

import harness  # noqa: E402


@pytest.fixture
def tern(tmp_path):
    """A harness.ClusterFactory for this test. At teardown every server it started is
    stopped, and the test fails if one exited non-zero or printed a sanitizer report."""
    factory = harness.ClusterFactory(tmp_path)
    yield factory
    problems = factory.shutdown()
    if problems:
        pytest.fail(harness.describe_problems(problems), pytrace=False)

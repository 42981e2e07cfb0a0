"""Fixtures of the job-lifecycle specifications."""
from __future__ import annotations

import pytest

from fal_kontext.jobs.runner import JobRunner


@pytest.fixture
def runner():
    """A job runner of the test's own, its loop thread ended afterwards."""
    runner = JobRunner()
    yield runner
    runner.close()

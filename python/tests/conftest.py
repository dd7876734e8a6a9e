"""Shared helpers of nvplan's Python tests (the fixtures come from nvplan's pytest plugin)."""

import os
from collections import namedtuple

import nvme as d
import pytest

Counts = namedtuple("Counts", "data_read data_written reads writes unsafe_shutdowns")


def smart(nvme0):
    """SMART / Health counters (LID 02h): what a worker did, as the controller counts it."""
    buf = d.Buffer(512)
    nvme0.getlogpage(2, buf, 512).waitdone()
    return Counts(buf.data(47, 32), buf.data(63, 48), buf.data(79, 64), buf.data(95, 80), buf.data(159, 144))


def delta(before, after):
    return Counts(*(a - b for a, b in zip(after, before)))


def pytest_configure(config):
    config.addinivalue_line("markers", "hours: runs for an hour or more; set NVPLAN_LONG=1 to run it")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("NVPLAN_LONG") == "1":
        return
    skip = pytest.mark.skip(reason="runs for an hour; set NVPLAN_LONG=1 to run it")
    for item in items:
        if "hours" in item.keywords:
            item.add_marker(skip)

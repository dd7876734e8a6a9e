"""pytest plugin: PyNVMe's fixtures over nvplan, so a PyNVMe test file runs as it is.

Fixtures: ``pcie``, ``nvme0``, ``nvme0n1``, ``qpair``, ``buf``, ``subsystem``, ``verify``,
``pciaddr``; option ``--pciaddr`` (default ``sim``: every test gets a fresh simulated
controller); ``$NVPLAN_POWER`` names a drive's power switch for ``subsystem``. A ``conftest.py`` that defines the same option and fixtures (PyNVMe's does)
takes precedence: the plugin then adds neither.
"""

import os

import nvme as d
import pytest

_HELP = "device under test: sim, sim:<options> (as nvplan run --target), or a PCI address (vfio-pci)"


@pytest.hookimpl(hookwrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    # Conftests load first; the option is added only when none of them defined it.
    yield
    try:
        parser.addoption("--pciaddr", action="store", default="sim", help=_HELP)
    except ValueError:
        pass


@pytest.fixture(scope="session")
def pciaddr(request):
    """The ``--pciaddr`` value (``sim`` when empty)."""
    return request.config.getoption("--pciaddr", default="sim") or "sim"


@pytest.fixture()
def pcie(pciaddr):
    """The PCIe function under test, opened afresh for each test."""
    p = d.Pcie(pciaddr)
    yield p
    p.close()


@pytest.fixture()
def nvme0(pcie):
    """The controller, brought up by the driver."""
    return d.Controller(pcie)


@pytest.fixture()
def subsystem(nvme0):
    """The controller's NVM subsystem (power, NSSR). A drive's power switch comes from
    ``$NVPLAN_POWER`` (as ``nvplan run --power``: ``slot``, ``command:off=...,on=...``,
    ``quarch:HOST``, ``suspend``); the simulator has its own."""
    return d.Subsystem(nvme0, power=os.environ.get("NVPLAN_POWER") or None)


@pytest.fixture()
def nvme0n1(nvme0):
    """Namespace 1."""
    ns = d.Namespace(nvme0)
    yield ns
    ns.close()


@pytest.fixture()
def qpair(nvme0):
    """An I/O queue pair as deep as the controller allows (1024 at most)."""
    q = d.Qpair(nvme0, min(1024, (nvme0.cap & 0xFFFF) + 1))
    yield q
    q.delete()


@pytest.fixture()
def buf():
    """A 4 KiB DMA buffer."""
    return d.Buffer(4096, "nvplan buffer")


@pytest.fixture()
def verify(nvme0n1):
    """Verification of namespace 1 turned on."""
    return nvme0n1.verify_enable(True)

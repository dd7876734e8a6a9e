"""PyNVMe's API over nvplan: ``import nvme as d`` as in a PyNVMe script.

``d.Pcie("sim")`` (or ``"sim:<options>"``, the strings ``nvplan run --target`` takes)
opens nvplan's simulated controller; ``d.Pcie("0000:01:00.0")`` a drive bound to
vfio-pci. Everything here is nvplan's library; this module only gives it PyNVMe's names.
"""

import logging
import random

from nvplan import _native
from nvplan._native import (
    CQE,
    IOCQ,
    IOSQ,
    PRP,
    SQE,
    Buffer,
    IoWorker,
    Namespace,
    NamespaceCreationError,
    NamespaceDeletionError,
    NvmeDeletionError,
    NvmeEnumerateError,
    NvmeShutdownStatusTimeoutError,
    Pcie,
    PRPList,
    Qpair,
    QpairCreationError,
    QpairDeletionError,
    Subsystem,
)

__version__ = "2.3.2"


class Controller(_native.Controller):
    """``Controller(pcie, nvme_init_func=None)``: brought up by the driver, or by
    ``nvme_init_func(controller)`` when one is given."""

    def __init__(self, pcie, nvme_init_func=None):
        self._init()


def srand(seed):
    """Seeds Python's ``random`` and nvplan's I/O workers, so a script repeats."""
    logging.getLogger("nvme").info("setup random seed: %#x", seed)
    random.seed(seed)
    _native.srand(seed)


__all__ = [
    "CQE",
    "IOCQ",
    "IOSQ",
    "PRP",
    "SQE",
    "Buffer",
    "Controller",
    "IoWorker",
    "Namespace",
    "NamespaceCreationError",
    "NamespaceDeletionError",
    "NvmeDeletionError",
    "NvmeEnumerateError",
    "NvmeShutdownStatusTimeoutError",
    "PRPList",
    "Pcie",
    "Qpair",
    "QpairCreationError",
    "QpairDeletionError",
    "Subsystem",
    "srand",
]

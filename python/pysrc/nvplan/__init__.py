"""nvplan from Python.

The classes are nvplan's own (the same driver, simulator and I/O worker the command line
runs); ``import nvme`` gives them under PyNVMe's names and conventions, and
:func:`run_plan` runs a YAML plan and returns its summary.
"""

from nvplan._native import (
    CQE,
    IOCQ,
    IOSQ,
    PRP,
    SQE,
    Buffer,
    Controller,
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
    __version__,
    run_plan,
    srand,
)

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
    "__version__",
    "run_plan",
    "srand",
]

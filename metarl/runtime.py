"""Process-wide settings for a training or benchmark process: threads and the allocator.

The outer step allocates and frees tensors of tens of MB many times per iteration. glibc
returns such blocks to the OS on free (``mmap`` threshold, heap trimming), so every
allocation faults its pages in again; measured on 2D navigation this costs about a third
of the outer step. :func:`configure_process` keeps freed memory in the process instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3


def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse; ``False`` where that is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, 2**30)  # blocks up to 1 GiB come from the heap
    ok &= mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)  # never give the heap's top back
    ok &= mallopt(_M_TOP_PAD, 2**28)
    return bool(ok)


def configure_process(threads: int) -> None:
    """Use ``threads`` torch CPU threads and keep freed memory for reuse."""
    torch.set_num_threads(threads)
    retain_freed_memory()


def check_device(name: str) -> torch.device:
    """``name`` as a device this process can use, or ``ValueError`` saying why not."""
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r}: this machine has no usable CUDA device (torch "
            f"{torch.__version__}, torch.cuda.is_available() is False); use --device cpu"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s)")
    return device

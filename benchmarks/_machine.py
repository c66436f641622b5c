"""The one machine record every benchmark writes beside its numbers, and its markdown line.

Timings mean little without the machine and its load, so each benchmark opens a
``MachineProbe`` before it measures (reading the 1-minute load average then: what other
processes were doing) and asks it for the record at the end (the load again: the benchmark's
own work included). Keys are the same in every ``results/*.json``::

    platform, kernel, python, cpus, load_avg_1m_before, load_avg_1m_after,
    numpy, torch, torch_threads, device, + benchmark-specific extras

``torch``/``torch_threads``/``device`` are None for benchmarks that never import torch.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any


def _load_1m() -> float:
    return round(os.getloadavg()[0], 2)


class MachineProbe:
    """Reads the load when made; ``record()`` returns the machine record at the end."""

    def __init__(self) -> None:
        self.load_before = _load_1m()

    def record(self, **extra: Any) -> dict[str, Any]:
        torch = sys.modules.get("torch")  # only if the benchmark uses it: never import it here
        numpy = sys.modules.get("numpy")
        device = None
        if torch is not None:
            device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        return {
            "platform": platform.platform(),
            "kernel": platform.release(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m_before": self.load_before,
            "load_avg_1m_after": _load_1m(),
            "numpy": getattr(numpy, "__version__", None),
            "torch": getattr(torch, "__version__", None),
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "device": device,
            **extra,
        }


def machine_line(m: dict[str, Any]) -> str:
    """One markdown sentence naming the machine, its load and the library versions."""
    parts = [f"Machine: {m['platform']}, {m['cpus']} CPUs"]
    parts.append(
        f"1-min load {m['load_avg_1m_before']:.2f} before the run, "
        f"{m['load_avg_1m_after']:.2f} after it"
    )
    versions = f"Python {m['python']}"
    if m.get("numpy"):
        versions += f", numpy {m['numpy']}"
    if m.get("torch"):
        versions += f", torch {m['torch']} ({m['torch_threads']} threads, {m['device']})"
    parts.append(versions)
    return "; ".join(parts) + "."

"""What decides a stand-alone run's float rounding: another CPU (or torch build) rounds differently, which after a
few epochs acts like another seed, so a mini ground truth's meta.yaml records which machine appended which rows.
"""
import hashlib
import platform
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


def machine(device="cpu"):
    """The CPU (model, feature flags) or GPU, and torch's build."""
    info = {}
    if CPUINFO.is_file():
        for line in CPUINFO.read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    flags = hashlib.sha1(info.get("flags", "").encode()).hexdigest()[:8]
    cpu = (f"{info.get('model name') or platform.processor() or platform.machine()} (family "
           f"{info.get('cpu family', '?')} model {info.get('model', '?')}, flags {flags})")
    if str(device).startswith("cuda"):
        cpu = torch.cuda.get_device_name(torch.device(device))
    return f"{cpu}; torch {torch.__version__} {torch.backends.cpu.get_cpu_capability()}"


def built_on(meta, row):
    """The machine that appended results.csv row ``row`` (0-based) as meta.yaml records it; None if unrecorded."""
    found = [m["machine"] for m in meta.get("machines") or [] if m["first_row"] <= row]
    return found[-1] if found and found[-1] != "unrecorded" else None

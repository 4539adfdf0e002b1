"""Where models run: the ``device`` param (``auto | cpu | cuda``) and mixed precision."""

from __future__ import annotations

import torch

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` needs one.

    Raises:
        ValueError: an unknown name, or ``cuda`` on a machine without a usable GPU.
    """
    if name not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}, got {name!r}")
    available = torch.cuda.is_available()
    if name == "cuda" and not available:
        raise ValueError("device: cuda was asked for, but torch sees no CUDA GPU (use auto or cpu)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and available) else "cpu")


def use_amp(device: torch.device, amp: bool) -> bool:
    """Mixed precision (bfloat16 autocast of the encoder) only where it pays: on CUDA."""
    return bool(amp) and device.type == "cuda"

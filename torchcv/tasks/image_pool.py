"""The image buffer of CycleGAN (Shrivastava et al. 2017): the discriminator sees a mix of the
newest fakes and older ones, which damps oscillation.

Until the pool holds ``size`` images every fake is stored and returned as it is; afterwards each fake
is, with probability 1/2, swapped for a random stored one (which is returned, the new one stored), or
else returned as it is. Unlike the reference, whose pool draws from Python's global ``random`` and is
lost when training stops, the pool owns a seeded generator and its ``state_dict`` holds the stored
images and the generator state, so a resumed run continues with exactly the same pool.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch


class ImagePool:
    def __init__(self, size: int = 50, seed: int = 0):
        if size < 0:
            raise ValueError(f"image pool size must be >= 0, got {size}")
        self.size = size
        self.images: List[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of the same shape: new fakes mixed with stored ones (no gradients)."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                slot = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[slot].to(image.device, image.dtype))
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> Dict[str, Any]:
        return {"size": self.size, "images": [im.cpu() for im in self.images],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: Dict[str, Any], device: Any = None) -> None:
        self.images = [im.to(device) if device is not None else im for im in state.get("images", [])][: self.size]
        if state.get("generator") is not None:
            self.generator.set_state(state["generator"])

"""Two numbers for the artefacts a user sees in sample grids: stripes and speckle.

For images in [-1, 1] (float64 sums, streamed batch by batch):

- second differences along each axis, d_yy = I[y+1] - 2 I[y] + I[y-1] and d_xx likewise;
- `stripe_ratio` = (mean |d_yy| / mean |d_xx|) of the samples divided by the same ratio of
  real images: above 1 when samples vary more from row to row than the data does
  (horizontal stripes, grid rows), below 1 when they vary more from column to column
  (vertical stripes); 1 = as anisotropic as the data;
- `stripe_excess` = max(stripe_ratio, 1 / stripe_ratio): stripes in either direction, 1 = none
  beyond the data's own anisotropy (vertical stripes give 2 as readily as horizontal ones);
- `hf_ratio` = mean |d_yy + d_xx| (the discrete Laplacian) of the samples divided by that of
  real images: above 1 for specks and torn edges, below 1 for blur.
"""

from __future__ import annotations

import numpy as np


class SecondDifferenceStats:
    """Running sums of |d_yy|, |d_xx| and |d_yy + d_xx| over interior pixels."""

    def __init__(self):
        self.yy = self.xx = self.lap = 0.0
        self.count = 0

    def update(self, images) -> None:
        x = np.asarray(images, np.float64)  # [B, H, W, C]
        dyy = x[:, 2:, 1:-1] - 2.0 * x[:, 1:-1, 1:-1] + x[:, :-2, 1:-1]
        dxx = x[:, 1:-1, 2:] - 2.0 * x[:, 1:-1, 1:-1] + x[:, 1:-1, :-2]
        self.yy += float(np.abs(dyy).sum())
        self.xx += float(np.abs(dxx).sum())
        self.lap += float(np.abs(dyy + dxx).sum())
        self.count += dyy.size

    def anisotropy(self) -> float:
        return self.yy / max(self.xx, 1e-300)

    def roughness(self) -> float:
        return self.lap / max(self.count, 1)


def artefact_ratios(samples: SecondDifferenceStats, real: SecondDifferenceStats) -> dict:
    stripe = samples.anisotropy() / real.anisotropy()
    return {"stripe_ratio": stripe, "stripe_excess": max(stripe, 1.0 / max(stripe, 1e-300)),
            "hf_ratio": samples.roughness() / max(real.roughness(), 1e-300)}

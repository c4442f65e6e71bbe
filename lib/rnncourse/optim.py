"""Optimisers for the NumPy models: a dict of arrays in, updated in place."""

import numpy as np


class Adam:
    """Adam (Kingma and Ba, 2015) for a dict of NumPy arrays, updated in place.

    The arithmetic follows torch.optim.Adam step for step, so that the NumPy model
    and the PyTorch twin can be compared exactly:
        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2,
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps = lr, betas, eps
        self.m = {k: np.zeros_like(p) for k, p in params.items()}
        self.v = {k: np.zeros_like(p) for k, p in params.items()}
        self.t = 0

    def step(self, params, grads):
        """One update of every array in params (in place); grads has the same keys."""
        b1, b2 = self.betas
        self.t += 1
        bias1, bias2 = 1 - b1**self.t, 1 - b2**self.t
        for k, p in params.items():
            g = grads[k]
            self.m[k] = b1 * self.m[k] + (1 - b1) * g
            self.v[k] = b2 * self.v[k] + (1 - b2) * g * g
            p -= (self.lr / bias1) * self.m[k] / (np.sqrt(self.v[k]) / np.sqrt(bias2) + self.eps)

"""The NumPy Adam against torch.optim.Adam, step for step, in float64."""

import numpy as np
import torch

from rnncourse.optim import Adam


def test_adam_matches_torch_optim_adam():
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 2)), "b": rng.standard_normal(4)}
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = Adam(params, lr=0.05)
    theirs = torch.optim.Adam(tensors.values(), lr=0.05)
    for _ in range(7):
        grads = {k: rng.standard_normal(v.shape) for k, v in params.items()}
        ours.step(params, grads)
        for k, t in tensors.items():
            t.grad = torch.tensor(grads[k])
        theirs.step()
    for k in params:
        np.testing.assert_allclose(params[k], tensors[k].detach().numpy(), rtol=1e-12, atol=1e-14)

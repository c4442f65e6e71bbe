"""Collection rules and shared fixtures for tests/.

The browser tests (tests/browser/) start JupyterLab and Chromium and take minutes.
They run as their own step, `pytest tests/browser`, never inside `pytest tests`.
The class-on-a-hub test (tests/hub/) creates system users and starts a JupyterHub: it too
runs as its own step, `pytest tests/hub`.

Markers (registered in pyproject.toml) name the slow families: grading (nbgrader runs
submissions), sandbox (bubblewrap kernels), notebooks (whole notebooks executed),
environment (pip resolves the pins). `make test-fast` runs everything else.
"""

import pytest

from rnngrading.course import new_course

collect_ignore = ["browser", "hub"]


@pytest.fixture(scope="session")
def scratch_course(tmp_path_factory):
    """A factory of course roots in temp folders: scratch_course(name, assignments=
    ("jacobian",), release=True) -> the root, with those assignments released (or the
    committed release/ copied, when release=False)."""
    def make(name, assignments=("jacobian",), release=True):
        return new_course(tmp_path_factory.mktemp(name) / "course", assignments, release)

    return make


# ---------------------------------------------------------------- PyTorch sequence models
# (fixtures for the library's PyTorch tests: test_state_gradients, test_recording, test_tbptt)

import pytest  # noqa: E402, F811 (this block stands on its own)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread (tiny matrices: faster, and bit-reproducible)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _token_batches(V, n_out, T, every_step, steps, seed=0, N=3):
    import torch

    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(steps):
        tokens = torch.randint(0, V, (N, T), generator=g)
        y = torch.randint(0, n_out, (N, T) if every_step else (N,), generator=g)
        batches.append((tokens, y))
    return batches


@pytest.fixture
def token_batches():
    """token_batches(V, n_out, T, every_step, steps, seed=0, N=3) -> `steps` seeded batches
    (tokens (N, T) in [0, V), targets (N, T) or (N,) in [0, n_out)) for a TokenModel."""
    return _token_batches


def _autograd_reach(model, tokens, y):
    import numpy as np
    import torch
    from torch import nn

    from rnncourse.seqmodels import sequence_loss

    H, V = model.cell.hidden_size, model.V
    dtype = model.out.weight.dtype
    Cell = nn.RNNCell if model.kind == "rnn" else nn.LSTMCell
    cell = Cell(V, H).to(dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.cell, f"{name}_l0"))
    out_layer = nn.Linear(H, model.out.out_features).to(dtype)
    out_layer.load_state_dict(model.out.state_dict())
    x = nn.functional.one_hot(tokens, V).to(dtype)
    N, T = tokens.shape
    h = torch.zeros(N, H, dtype=dtype)
    c = torch.zeros(N, H, dtype=dtype)
    hs, forget = [], []
    for t in range(T):
        if model.kind == "rnn":
            h = cell(x[:, t], h)
        else:
            gates = x[:, t] @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
            forget.append(torch.sigmoid(gates.chunk(4, dim=1)[1]).detach())
            h, c = cell(x[:, t], (h, c))
        h.retain_grad()
        hs.append(h)
    stacked = torch.stack(hs, dim=1)
    out = out_layer(stacked) if model.every_step else out_layer(stacked[:, -1])
    sequence_loss(out, y).backward()
    norms = np.array([h.grad.norm().item() for h in hs])
    return norms, (torch.stack(forget, dim=1).numpy() if forget else None)


@pytest.fixture
def autograd_reach():
    """autograd_reach(model, tokens, y) -> (T,) ||dL/dh_t|| over (N, H), and for an LSTM
    the forget gates (N, T, H): autograd through an explicit nn.RNNCell / nn.LSTMCell loop
    holding copies of a TokenModel's weights, h_t.retain_grad() at every step. The
    independent reference for rnncourse.state_gradients."""
    return _autograd_reach

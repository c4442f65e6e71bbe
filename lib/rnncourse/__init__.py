"""rnncourse: the reference code of the course on RNNs and the vanishing gradient.

Modules:
    rnn              the tanh RNN in NumPy: step and sequence forward/backward, loss, clipping
    init             initialisers: small random, orthogonal, chosen spectral radius
    gradients        step Jacobians and their products, gradient norms by lag, spectra,
                     numerical checks; the activations and their derivatives
    optim            the NumPy Adam (the same arithmetic as torch.optim.Adam)
    checks           check_shape, the readable shape assertion
    tasks            long-range toy tasks: the copy task, subject-verb agreement, the echo stream
    data             the names and the corpus, a vocabulary, encoding
    ngram            n-gram models over a window of k tokens (lecture 01)
    ngram_widget     lecture 01's window explorer and its static figure
    diagrams         the unrolled-RNN diagram
    charlm           the character-level name model in NumPy and its PyTorch twin (lecture 03)
    flow_explorer    lecture 05's gradient-flow explorer: the numbers, the plot, the widget
    torch_models     the PyTorch twin of the NumPy RNN; token LSTM and GRU models (lecture 04)
    seqmodels        PyTorch RNN/LSTM over tokens, and the one Adam-and-clip training loop
    agreement        lecture 04's agreement experiment: the budget, the sweep, the cue signal
    lstm             LSTM gates, the cell-path Jacobian, the forget-gate bias (lecture 06)
    gru              the GRU step in the course's notation and its step Jacobian by path;
                     PyTorch's GRUCell read into that notation (lecture 06)
    connectivity     |d log p_t / d x_(t-k)| of RNN, LSTM and GRU character models, by
                     distance (lecture 03)
    connectivity_widget  lecture 03's per-letter connectivity view and its widget
    tbptt            truncated BPTT: carried state, chunk losses, the echo accuracy
    state_gradients  the total dL/dh_t of a PyTorch model: a readable reference, a fast path
    recording        records gradient flow during training, and the alert
    dashboard        the views of a recording: figures and the live ipywidgets panel

Only the NumPy modules are imported here, so `import rnncourse` stays light; the
PyTorch and plotting modules are imported by name (`from rnncourse import tbptt`).
"""

from . import data, gradients, init, ngram, rnn, tasks
from .checks import check_shape
from .gradients import (
    eigenvalues,
    gradient_norm_by_lag,
    jacobian_product,
    numerical_gradient,
    numerical_jacobian,
    rel_error,
    spectral_norm,
    spectral_radius,
    step_jacobian,
)
from .init import init_rnn_params, orthogonal, small_random, with_spectral_radius
from .rnn import (
    clip_by_global_norm,
    rnn_backward,
    rnn_forward,
    rnn_loss,
    rnn_step_backward,
    rnn_step_forward,
    softmax,
    softmax_cross_entropy,
)

__all__ = [
    "data",
    "gradients",
    "init",
    "ngram",
    "rnn",
    "tasks",
    "check_shape",
    "clip_by_global_norm",
    "eigenvalues",
    "gradient_norm_by_lag",
    "init_rnn_params",
    "jacobian_product",
    "numerical_gradient",
    "numerical_jacobian",
    "orthogonal",
    "rel_error",
    "rnn_backward",
    "rnn_forward",
    "rnn_loss",
    "rnn_step_backward",
    "rnn_step_forward",
    "small_random",
    "softmax",
    "softmax_cross_entropy",
    "spectral_norm",
    "spectral_radius",
    "step_jacobian",
    "with_spectral_radius",
]

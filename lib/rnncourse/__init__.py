"""rnncourse: the reference code of the course on RNNs and the vanishing gradient.

Modules:
    rnn           the tanh RNN in NumPy: step and sequence forward/backward, loss, clipping
    init          initialisers: small random, orthogonal, chosen spectral radius
    gradients     step Jacobians and their products, spectra, numerical checks
    torch_models  the PyTorch twin of the NumPy RNN
    tasks         long-range toy tasks: the copy task, subject-verb agreement
    checks        check_shape, the readable shape assertion

The PyTorch twin is not imported here, so `import rnncourse` stays light.
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

"""Judged checks of the eigenvalues assignment (rnngrading.judge): one Part per test cell.

The visible tests' cases come first (their hints are the known mistakes' messages); the
hidden cases are drawn per student from `rng`. References are the source notebook's own
solutions, run in the grader's process; tolerances are those of the visible tests. Parts
2, 4 and 6 run with NumPy's versions of the earlier parts in place of the student's, as
the visible tests do, so a mistake there is not charged twice.
"""

import numpy as np

from rnngrading.judge import Case, Expr, Mistake, Part, close, equal, multiset

NUMPY_EIGENVALUES = Expr("np.linalg.eigvals")
NUMPY_RADIUS = Expr("lambda W: float(np.max(np.abs(np.linalg.eigvals(W))))")
NUMPY_NORM = Expr("lambda W: float(np.linalg.svd(W, compute_uv=False)[0])")


def _only(label, wrong):
    """A mistake's wrong answer for the case labelled `label` only (its hint names it)."""

    def for_case(case, want, ref):
        if case.label != label:
            raise LookupError(label)
        return wrong(case, want, ref)

    return for_case


def _word(got):
    """A string answer (NumPy's str_ comes back as a 0-d array of strings)."""
    if hasattr(got, "dtype") and got.dtype.kind == "U" and got.shape == ():
        return str(got)
    return got


def _norm(W, ord=2):
    return float(np.linalg.norm(np.asarray(W, dtype=float), ord))


def _vector(got):
    """The student's answer as a float vector, or None if it is no array of real numbers."""
    if isinstance(got, (str, dict, tuple, list, bool)) or got is None:
        return None
    v = np.asarray(got)
    if v.dtype.kind not in "biuf":
        return None
    return v.astype(float).ravel()


# ---- Part 1: eigenvalues


TRIANGULAR = np.array([[2.0, 1.0], [0.0, 3.0]])
NOT_SYMMETRIC = np.array([[1.0, 2.0], [-1.0, 0.5]])
ROTATION = np.array([[0.0, -1.0], [1.0, 0.0]])
THREE = np.array([[0.0, -2.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -0.5]])


def eigenvalues_cases(rng):
    yield Case("eigenvalues", (TRIANGULAR,), label="the visible test's triangular [[2, 1], [0, 3]]",
               hidden=False)
    yield Case("eigenvalues", (NOT_SYMMETRIC,), label="the visible test's [[1, 2], [-1, 0.5]]",
               hidden=False)
    yield Case("eigenvalues", (ROTATION,), label="the visible test's rotation by 90 degrees",
               hidden=False)
    yield Case("eigenvalues", (THREE,), label="the visible test's 3 x 3 matrix", hidden=False)
    for H in (1, int(rng.integers(2, 5)), int(rng.integers(5, 8)), int(rng.integers(8, 12))):
        yield Case("eigenvalues", (rng.standard_normal((H, H)),), inputs_unchanged=True)
    theta, r = rng.uniform(0.3, 2.8), rng.uniform(0.5, 2.0)  # a complex pair, not symmetric
    block = r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    Q, _ = np.linalg.qr(rng.standard_normal((2, 2)))
    yield Case("eigenvalues", (Q @ block @ Q.T,), inputs_unchanged=True)


EIGH_HINT = ("np.linalg.eigh (or eigvalsh) assumes a symmetric matrix and reads only one "
             "triangle; W_h is not symmetric in general.")
_eigenvalues_multiset = multiset(1e-5)


def eigenvalues_compare(got, want):
    if isinstance(got, (tuple, list)) and len(got) == 2 and np.ndim(got[1]) == 2:
        return ("np.linalg.eig returns a pair (eigenvalues, eigenvectors): return only the "
                "eigenvalues.")
    if isinstance(got, (tuple, list)):
        return f"expected an array of numbers, got a {type(got).__name__}"
    return _eigenvalues_multiset(got, want)


EIGENVALUES_MISTAKES = (
    Mistake(lambda case, want, ref: np.linalg.svd(case.args[0], compute_uv=False),
            "Those are singular values (from the SVD), not eigenvalues."),
    Mistake(lambda case, want, ref: np.linalg.eigvalsh(case.args[0]), EIGH_HINT),
    Mistake(lambda case, want, ref: np.linalg.eigvalsh(case.args[0], UPLO="U"), EIGH_HINT),
    Mistake(lambda case, want, ref: np.real(want),
            "Keep the imaginary parts: a real matrix can have complex eigenvalues (a rotation "
            "by 90 degrees has +i and -i)."),
)

# ---- Part 2: spectral_radius (with NumPy's eigenvalues in place of Part 1)


def radius_cases(rng):
    visible = [(np.array([[0.3, -1.2], [0.9, 0.4]]),
                "the visible test's [[0.3, -1.2], [0.9, 0.4]]"),
               (np.diag([-1.5, 0.5]), "the visible test's diag(-1.5, 0.5)"),
               (np.array([[0.5, 4.0], [0.0, 0.5]]),
                "the visible test's shear [[0.5, 4], [0, 0.5]]"),
               (np.array([[0.0, 0.0, -2.0], [0.0, 0.3, 0.0], [1.0, 0.0, 0.0]]),
                "the visible test's 3 x 3 matrix")]
    replace = {"eigenvalues": NUMPY_EIGENVALUES}
    for W, label in visible:
        yield Case("spectral_radius", (W,), replace=replace, label=label, hidden=False)
    for H in (1, int(rng.integers(2, 6)), int(rng.integers(6, 12)), int(rng.integers(12, 20))):
        yield Case("spectral_radius", (rng.standard_normal((H, H)) / np.sqrt(H),),
                   replace=replace)
    theta, r = rng.uniform(1.8, 2.9), rng.uniform(1.1, 1.6)  # real parts negative, rho > 1
    W = r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    yield Case("spectral_radius", (W,), replace=replace)


RADIUS_MISTAKES = (
    Mistake(_only("the visible test's diag(-1.5, 0.5)",
                  lambda case, want, ref: 0.5),
            "Take the modulus: the eigenvalue -1.5 has modulus 1.5."),
    Mistake(lambda case, want, ref: float(np.max(np.linalg.eigvals(case.args[0]).real)),
            "That is the largest real part. The spectral radius is the largest modulus |lambda| "
            "(for 0.35 +- 1.0380i it is sqrt(0.35**2 + 1.0380**2))."),
    Mistake(lambda case, want, ref: _norm(case.args[0]),
            "That is the largest singular value (the spectral norm), not the spectral radius."),
)

# ---- Part 3: spectral_norm and most_stretched (a direction: judged by ||W v||)

SHEAR = np.array([[0.5, 4.0], [0.0, 0.5]])
TALL = np.array([[1.0, 0.0], [0.0, -2.0], [2.0, 0.0]])


def norm_cases(rng):
    yield Case("spectral_norm", (np.diag([3.0, -4.0]),), label="the visible test's diag(3, -4)",
               hidden=False)
    yield Case("spectral_norm", (SHEAR,), label="the visible test's shear [[0.5, 4], [0, 0.5]]",
               hidden=False)
    yield Case("spectral_norm", (TALL,), label="the visible test's 3 x 2 [[1, 0], [0, -2], [2, 0]]",
               hidden=False)
    yield Case("most_stretched", (SHEAR,),
               label="the visible test's most_stretched of the shear", hidden=False)
    yield Case("most_stretched", (TALL,),
               label="the visible test's most_stretched of the 3 x 2 matrix", hidden=False)
    shapes = [(1, 1), (int(rng.integers(3, 7)),) * 2, (int(rng.integers(9, 14)),) * 2,
              (int(rng.integers(6, 9)), int(rng.integers(2, 5))),
              (int(rng.integers(2, 4)), int(rng.integers(5, 8)))]
    for shape in shapes:
        W = rng.standard_normal(shape)
        yield Case("spectral_norm", (W,))
        yield Case("most_stretched", (W,))


NORM_MISTAKES = (
    (lambda W: _norm(W, "fro"),
     "That is the Frobenius norm sqrt(sum of squares). The spectral norm is the largest "
     "singular value, the square root of the largest eigenvalue of W^T W."),
    (lambda W: _norm(W) ** 2, "That is the largest eigenvalue of W^T W: take its square root."),
    (lambda W: float(np.max(np.abs(np.linalg.eigvals(W)))) if W.shape[0] == W.shape[1]
     else np.nan, "That is the spectral radius here; the norm is the largest singular value."),
)
_norm_close = close(rtol=1e-5, atol=1e-8)


def norm_check(got, case, ref, rng):
    W = case.args[0]
    want = _norm(W)
    if case.call == "spectral_norm":
        why = _norm_close(got, want)
        if why is None:
            return None
        for wrong, message in NORM_MISTAKES:
            if not np.isnan(wrong(W)) and _norm_close(got, wrong(W)) is None:
                return message
        return f"spectral_norm: {why}"
    v = _vector(got)
    if v is None:
        return f"most_stretched: expected an array of real numbers, got {_describe(got)}"
    if v.shape != (W.shape[1],):
        return (f"most_stretched returns an (n,) vector, here ({W.shape[1]},); got shape "
                f"{v.shape}")
    if not np.all(np.isfinite(v)) or not np.isclose(np.linalg.norm(v), 1.0, rtol=1e-5):
        return "most_stretched: v must be a unit vector, ||v|| = 1."
    stretch = float(np.linalg.norm(W @ v))
    if W.shape[0] == W.shape[1] and np.isclose(
            stretch, np.max(np.abs(np.linalg.eigvals(W))), rtol=1e-3) and not np.isclose(
            stretch, want, rtol=1e-4):
        return ("most_stretched: that is an eigenvector of W, which W only scales by its "
                "eigenvalue. The direction stretched most is the top eigenvector of W^T W.")
    if not np.isclose(stretch, want, rtol=1e-4):
        return ("most_stretched: ||W v|| is not ||W||_2 (the top eigenvector of W W^T belongs to "
                "the output side, not to v)")
    return None


def _describe(value):
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} items"
    return type(value).__name__ if value is not None else "None"


# ---- Part 4: predict_linear_gradient (with NumPy's radius in place of Part 2)


def predict_cases(rng):
    replace = {"spectral_radius": NUMPY_RADIUS, "eigenvalues": NUMPY_EIGENVALUES}
    visible = [(np.diag([0.5, 0.9]), "diag(0.5, 0.9)"), (np.diag([1.1, 0.3]), "diag(1.1, 0.3)"),
               (np.eye(3), "the identity"), (np.diag([1.0, 0.4]), "diag(1.0, 0.4)"),
               (np.array([[0.5, 0.3, 0.2], [0.3, 0.4, 0.3], [0.2, 0.3, 0.5]]),
                "matrix whose rows sum to 1"),
               (0.5 * np.ones((4, 4)), "0.5 * ones((4, 4))"),
               (0.2 * np.ones((4, 4)), "0.2 * ones((4, 4))")]
    for W, label in visible:
        yield Case("predict_linear_gradient", (W,), replace=replace,
                   label=f"the visible test's {label}", hidden=False)
    drawn = 0
    while drawn < 6:
        H, scale = int(rng.integers(2, 10)), float(rng.choice([0.6, 1.4]) * rng.uniform(0.8, 1.2))
        W = scale * rng.standard_normal((H, H)) / np.sqrt(H)
        if abs(np.max(np.abs(np.linalg.eigvals(W))) - 1.0) > 0.05:
            drawn += 1
            yield Case("predict_linear_gradient", (W,), replace=replace)
    Q, _ = np.linalg.qr(rng.standard_normal((int(rng.integers(4, 9)),) * 2))  # rho = 1 (round-off)
    yield Case("predict_linear_gradient", (Q,), replace=replace)
    big = rng.uniform(1.5, 3.0)
    yield Case("predict_linear_gradient", (np.diag([0.2, big, -0.1])[rng.permutation(3)],),
               replace=replace)
    yield Case("predict_linear_gradient", (np.array([[rng.uniform(0.9, 0.97)]]),),
               replace=replace)


def _prediction(rho):
    return "neither" if abs(rho - 1.0) <= 1e-6 else ("vanish" if rho < 1.0 else "explode")


def predict_compare(got, want):
    return equal(_word(got), want)


PREDICT_MISTAKES = (
    Mistake(lambda case, want, ref: ("vanish" if np.max(np.abs(np.linalg.eigvals(case.args[0])))
                                     < 1.0 else "explode"),
            "rho = 1 (up to round-off) is the boundary case, neither: compare with the "
            "tolerance, |rho - 1| <= tol."),
    Mistake(lambda case, want, ref: {"vanish": "explode", "explode": "vanish"}[want],
            "The other way round: rho < 1 vanishes (like rho**l), rho > 1 explodes."),
)

# ---- Part 5: random_with_spectral_radius (its matrices are random: judged by their radius,
# and by reproducibility, through a helper that calls it once per seed)

DRAWS = Expr("def draws(H, radius, seeds):\n"
             "    return [random_with_spectral_radius(H, radius, np.random.default_rng(int(s)))\n"
             "            for s in seeds]\n", uses=["random_with_spectral_radius"], define="draws")


def random_cases(rng):
    replace = {"_judge_draws": DRAWS}

    def draws(H, radius, seeds, **kw):
        return Case("_judge_draws", (H, radius, np.asarray(seeds, dtype=np.int64)),
                    replace=replace, **kw)

    yield draws(4, 0.8, [0], label="the visible test's H = 4, radius 0.8", hidden=False)
    yield draws(16, 1.2, [0], label="the visible test's H = 16, radius 1.2", hidden=False)
    yield draws(5, 0.9, [123, 123, 124], label="the visible test's seeds 123, 123, 124",
                hidden=False)
    seeds = rng.integers(0, 2**31, size=8)
    for H, radius in [(1, rng.uniform(0.1, 0.5)), (2, rng.uniform(1.5, 2.5)),
                      (int(rng.integers(30, 60)), 1.0), (int(rng.integers(5, 10)),
                                                          rng.uniform(0.01, 0.1))]:
        yield draws(H, float(radius), [seeds[0]])
    yield draws(int(rng.integers(3, 6)), float(rng.uniform(0.5, 1.5)),
                [seeds[1], seeds[2], seeds[1], seeds[3], seeds[4]])


def random_check(got, case, ref, rng):
    H, radius, seeds = case.args
    if not isinstance(got, list) or len(got) != len(seeds):
        return f"expected one matrix per call, got {_describe(got)}"
    mats = []
    for W in got:
        W = np.asarray(W) if isinstance(W, list) else W
        if isinstance(W, (str, dict, tuple, list, bool)) or W is None:
            return f"expected an array, got {_describe(W)}"
        W = np.asarray(W)
        if W.dtype.kind not in "biufc":
            return f"expected numbers, got values of dtype {W.dtype}"
        if W.shape != (H, H):
            return f"expected shape ({H}, {H}), got {W.shape}"
        if W.dtype.kind == "c":
            return "W_h is a real matrix: drop the (zero) imaginary parts, if any."
        if not np.all(np.isfinite(W)):
            return "the matrix has values that are not finite"
        rho = float(np.max(np.abs(np.linalg.eigvals(W.astype(float)))))
        if not np.isclose(rho, radius, rtol=1e-5):
            return f"asked for spectral radius {radius:.6g}, got {rho:.6f}"
        mats.append(W)
    for i, j in [(a, b) for a in range(len(seeds)) for b in range(a)]:
        same = np.array_equal(mats[i], mats[j])
        if seeds[i] == seeds[j] and not same:
            return ("The same seed gave two different matrices: draw from the rng argument, "
                    "not from np.random.* (the global generator).")
        if seeds[i] != seeds[j] and (np.allclose(mats[i], mats[j])
                                     or np.array_equal(np.round(mats[i], 8),
                                                       np.round(mats[j], 8))):
            return "Different seeds should give different matrices."
    return None


# ---- Part 6: linear_gradient_norms (with NumPy's spectral norm in place of Part 3)


def norms_cases(rng):
    replace = {"spectral_norm": NUMPY_NORM}
    c, s = np.cos(0.7), np.sin(0.7)
    yield Case("linear_gradient_norms", (np.diag([0.9, 0.5]), 10), replace=replace,
               label="the visible test's diag(0.9, 0.5), steps = 10", hidden=False)
    yield Case("linear_gradient_norms", (0.8 * np.array([[c, -s], [s, c]]), 50), replace=replace,
               label="the visible test's rotation scaled by 0.8, steps = 50", hidden=False)
    a, b = rng.uniform(0.8, 0.95), rng.uniform(2.0, 4.0)  # non-normal: norms rise, then fall
    yield Case("linear_gradient_norms", (np.array([[a, b], [0.0, a]]), int(rng.integers(25, 36))),
               replace=replace, inputs_unchanged=True)
    H = int(rng.integers(4, 9))
    W = rng.standard_normal((H, H)) / np.sqrt(H)
    yield Case("linear_gradient_norms", (W, int(rng.integers(10, 16))), replace=replace,
               inputs_unchanged=True)
    yield Case("linear_gradient_norms", (W, 0), replace=replace)
    W = rng.standard_normal((3, 3))
    yield Case("linear_gradient_norms", (W / np.max(np.abs(np.linalg.eigvals(W))) * 1.05, 20),
               replace=replace, inputs_unchanged=True)


def _powers(W, lags, ord=2):
    return np.array([_norm(np.linalg.matrix_power(W, lag), ord) if lag >= 0 else np.nan
                     for lag in lags])


NORMS_MISTAKES = (
    Mistake(lambda case, want, ref: _powers(case.args[0], range(case.args[1] + 1), "fro"),
            "That is the Frobenius norm of W^l. The gradient gain is the spectral norm, ord=2."),
    Mistake(lambda case, want, ref: np.asarray(want)[:-1],
            "steps = s means lags 0 .. s: s + 1 entries."),
    Mistake(lambda case, want, ref: _powers(case.args[0], range(1, case.args[1] + 2)),
            "Off by one: entry l must be the norm of W^l (entry 0 is the norm of W^0 = I, which "
            "is 1)."),
    Mistake(lambda case, want, ref: np.concatenate([[1.0], _powers(case.args[0],
                                                                    range(case.args[1]))]),
            "Off by one: entry l must be the norm of W^l."),
    Mistake(lambda case, want, ref: np.max(np.abs(np.linalg.eigvals(case.args[0])))
            ** np.arange(case.args[1] + 1),
            "These are rho**l. For a non-normal matrix the norms of the powers differ from "
            "rho**l: compute the powers."),
)

# ---- Part 7: the textbook case, values of the notebook


def textbook_cases(rng):
    for name in ("tr_2d", "det_2d", "eig_2d", "radius_2d", "prediction_2d"):
        yield Case(name=name, label=name, hidden=False)
    yield Case(name="eig_2d", args=(Expr("det_2d", uses=["det_2d"]),),
               returns="(result, args[0])")


_textbook_close = close(rtol=1e-5)
_textbook_pair = multiset(1e-5)
TEXTBOOK_HINTS = {
    "tr_2d": "The trace is the sum of the diagonal, 0.5 + 0.7.",
    "det_2d": "det = a d - b c: here 0.5 * 0.7 - 1.0 * (-0.82) = 1.17.",
    "eig_2d": "eig_2d should be 0.6 +- 0.9i.",
    "radius_2d": "radius_2d should be |0.6 +- 0.9i| = sqrt(det) = 1.0817.",
}


def textbook_check(got, case, ref, rng):
    if case.returns:  # the hidden check: for a complex pair |lambda|^2 = det
        eig, det = got
        if not np.allclose(np.abs(np.asarray(eig, dtype=complex)) ** 2, float(det), rtol=1e-5):
            return "for a complex pair |lambda|^2 = det"
        return None
    want = ref[case.name]
    if case.name == "prediction_2d":
        why = equal(_word(got), want)
        return f"rho = 1.08 > 1, so the linear RNN's gradient explodes; {why}" if why else None
    if isinstance(got, (str, dict, tuple, list, bool)) or got is None:
        return f"{case.name}: expected numbers, got {_describe(got)}"
    values = np.asarray(got)
    if values.dtype.kind not in "biufc":
        return f"{case.name}: expected numbers, got values of dtype {values.dtype}"
    if case.name == "eig_2d":
        if values.size != 2:
            return f"eig_2d holds the two eigenvalues; got shape {values.shape}"
        if values.dtype.kind != "c" or not np.allclose(np.abs(values.imag), 0.9, rtol=1e-5):
            return ("tr^2 / 4 - det < 0 here: the eigenvalues are a complex pair, tr/2 +- "
                    "i sqrt(det - tr^2/4).")
        return TEXTBOOK_HINTS["eig_2d"] if _textbook_pair(values, want) else None
    if values.size != 1:
        return f"{case.name} should be one number, got shape {values.shape}"
    if _textbook_close(values.reshape(()), want) is None:
        return None
    if case.name == "det_2d" and np.isclose(values.reshape(()), 0.35 - 0.82):
        return "det = a d - b c: here 0.5 * 0.7 - 1.0 * (-0.82)."
    if case.name == "radius_2d" and np.isclose(values.reshape(()), 0.6):
        return "0.6 is the real part of 0.6 +- 0.9i. The modulus decides: sqrt(0.6**2 + 0.9**2)."
    return TEXTBOOK_HINTS[case.name]


PARTS = [
    Part("test_eigenvalues", eigenvalues_cases, eigenvalues_compare,
         EIGENVALUES_MISTAKES),
    Part("test_spectral_radius", radius_cases, close(rtol=1e-5, atol=1e-8), RADIUS_MISTAKES),
    Part("test_spectral_norm", norm_cases, check=norm_check),
    Part("test_predict_linear_gradient", predict_cases, predict_compare, PREDICT_MISTAKES),
    Part("test_random_with_spectral_radius", random_cases, check=random_check),
    Part("test_linear_gradient_norms", norms_cases, close(rtol=1e-5, atol=1e-8), NORMS_MISTAKES),
    Part("test_textbook_2d", textbook_cases, check=textbook_check),
]
SOURCE_CELLS = ("part7-setup",)

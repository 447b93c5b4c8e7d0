#!/usr/bin/env python3
"""Independent float64 reference of the DenseICNN maths (MATH.md sections 2-4).

Everything is written per sample with plain numpy, deliberately without batching, BLAS-shaped
tricks or autodiff, so that it can serve as an independent check of the C kernels.
Shapes follow MATH.md sec. 2: A_l (D, r, n_l), W_l (n_l, D), b_l (n_l), U_l (n_l, n_{l-1}) for
l >= 2 and w (n_L). Layer indices in the code are 0-based (layer 0 is MATH.md's l = 1).
"""

import numpy as np


# ---------------------------------------------------------------------------------------------
# Parameters: canonical flat order (MATH.md sec. 2)
# ---------------------------------------------------------------------------------------------

def _block_shapes(D, widths, r):
    """List of (layer index or None for w, name, shape) in the canonical order of MATH.md sec. 2:
    for each layer A, W, b, then U if it is not the first layer; after all layers, w."""
    shapes = []
    for l, n in enumerate(widths):
        shapes.append((l, "A", (D, r, n)))
        shapes.append((l, "W", (n, D)))
        shapes.append((l, "b", (n,)))
        if l > 0:
            shapes.append((l, "U", (n, widths[l - 1])))
    shapes.append((None, "w", (widths[-1],)))
    return shapes


def param_count(D, widths, r):
    """Length P of the flat parameter vector."""
    return sum(int(np.prod(shape)) for _, _, shape in _block_shapes(D, widths, r))


def unpack(theta, D, widths, r):
    """Split the flat vector theta (row-major blocks, MATH.md sec. 2) into
    (layers, w): layers[l] is a dict with keys A, W, b and (for l >= 1) U; w is the output weights.
    The arrays are copies, so they can be modified freely."""
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (param_count(D, widths, r),):
        raise ValueError("theta has shape %s, expected (%d,)" % (theta.shape, param_count(D, widths, r)))
    layers = [dict() for _ in widths]
    w = None
    offset = 0
    for l, name, shape in _block_shapes(D, widths, r):
        size = int(np.prod(shape))
        block = theta[offset:offset + size].reshape(shape).copy()
        offset += size
        if l is None:
            w = block
        else:
            layers[l][name] = block
    return layers, w


def pack(layers, w, D, widths, r):
    """Inverse of unpack: concatenate the blocks in canonical order into one flat vector."""
    blocks = []
    for l, name, shape in _block_shapes(D, widths, r):
        block = w if l is None else layers[l][name]
        assert block.shape == shape
        blocks.append(block.reshape(-1))
    return np.concatenate(blocks)


# ---------------------------------------------------------------------------------------------
# Activation: softplus and its derivatives (MATH.md sec. 2)
# ---------------------------------------------------------------------------------------------

def _softplus(a):
    return np.logaddexp(0.0, a)


def _logistic(a):
    # exp of a non-positive number only, so no overflow for large |a|
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _activation(l, a):
    """Return sigma(a), sigma'(a), sigma''(a), sigma'''(a) for layer l (0-based).
    Layer 0 (MATH.md l = 1) has no activation: sigma' = 1, sigma'' = sigma''' = 0."""
    if l == 0:
        return a.copy(), np.ones_like(a), np.zeros_like(a), np.zeros_like(a)
    s1 = _logistic(a)
    s2 = s1 * (1.0 - s1)
    s3 = s2 * (1.0 - 2.0 * s1)
    return _softplus(a), s1, s2, s3


# ---------------------------------------------------------------------------------------------
# Forward pass, gradient and Hessian in x (MATH.md sec. 2 and 3)
# ---------------------------------------------------------------------------------------------

def _forward_all(layers, w, s, x):
    """Forward and backward pass plus Jacobians for one sample x (D,).
    Returns psi, grad, H and a list of per-layer dicts with every intermediate needed by the
    reverse sweep: P (n, r), a, z, sigma derivatives s1 s2 s3, delta, g, Jq (n, D), J, Jz."""
    D = x.shape[0]
    L = len(layers)
    cache = [dict() for _ in range(L)]

    # Forward pass (sec. 2)
    z_prev = None
    for l, lay in enumerate(layers):
        A = lay["A"]
        P = np.einsum("dsj,d->js", A, x)                  # P[j][s] = sum_d A[d][s][j] x_d
        q = np.sum(P ** 2, axis=1) + lay["W"] @ x + lay["b"]
        a = q if l == 0 else lay["U"] @ z_prev + q
        z, s1, s2, s3 = _activation(l, a)
        cache[l].update(P=P, a=a, z=z, s1=s1, s2=s2, s3=s3)
        z_prev = z
    psi = w @ cache[-1]["z"] + 0.5 * s * (x @ x)

    # Backward pass (sec. 3): delta_L = w, g_l = delta_l sigma'(a_l), delta_{l-1} = U_l^T g_l
    delta = w.copy()
    for l in range(L - 1, -1, -1):
        g = delta * cache[l]["s1"]
        cache[l].update(delta=delta, g=g)
        if l > 0:
            delta = layers[l]["U"].T @ g

    # Jacobians (sec. 3): Jq_l[j, d] = W_l[j, d] + 2 sum_s P_l[j][s] A_l[d][s][j]
    Jz_prev = None
    for l, lay in enumerate(layers):
        Jq = lay["W"] + 2.0 * np.einsum("js,dsj->jd", cache[l]["P"], lay["A"])
        J = Jq if l == 0 else lay["U"] @ Jz_prev + Jq
        Jz = cache[l]["s1"][:, None] * J
        cache[l].update(Jq=Jq, J=J, Jz=Jz)
        Jz_prev = Jz

    # Outputs (sec. 3)
    grad = s * x
    H = s * np.eye(D)
    for l, lay in enumerate(layers):
        c = cache[l]
        grad = grad + c["Jq"].T @ c["g"]
        # sum_j g[j] 2 M[j], M[j] = sum_s A[:, s, j] A[:, s, j]^T
        H = H + 2.0 * np.einsum("j,dsj,esj->de", c["g"], lay["A"], lay["A"])
        if l > 0:
            S = c["delta"] * c["s2"]
            H = H + c["J"].T @ (S[:, None] * c["J"])
    return psi, grad, H, cache


def evaluate(theta, D, widths, r, s, x):
    """psi(x), grad psi(x) (D,), Hess psi(x) (D, D) and log det Hess psi(x) for one sample x.
    The log-determinant is 2 sum log diag of the Cholesky factor (MATH.md sec. 3)."""
    layers, w = unpack(theta, D, widths, r)
    x = np.asarray(x, dtype=np.float64).reshape(D)
    psi, grad, H, _ = _forward_all(layers, w, s, x)
    logdet = 2.0 * np.sum(np.log(np.diag(np.linalg.cholesky(H))))
    return psi, grad, H, logdet


# ---------------------------------------------------------------------------------------------
# The reverse sweep (MATH.md sec. 4)
# ---------------------------------------------------------------------------------------------

def theta_grad(theta, D, widths, r, s, x, psibar, ybar, Hbar):
    """Gradient with respect to theta (flat, canonical order) of
    L = psibar psi(x) + ybar . grad psi(x) + <Hbar, Hess psi(x)>  for one sample x,
    by the reverse sweep R1-R6 of MATH.md sec. 4. Hbar must be symmetric."""
    layers, w = unpack(theta, D, widths, r)
    x = np.asarray(x, dtype=np.float64).reshape(D)
    ybar = np.asarray(ybar, dtype=np.float64).reshape(D)
    Hbar = np.asarray(Hbar, dtype=np.float64).reshape(D, D)
    _, _, _, c = _forward_all(layers, w, s, x)
    L = len(layers)

    # Adjoints of the parameters and of the intermediates, all starting at zero.
    bar = [{k: np.zeros_like(v) for k, v in lay.items()} for lay in layers]
    wbar = np.zeros_like(w)
    gbar = [np.zeros_like(c[l]["g"]) for l in range(L)]
    deltabar = [np.zeros_like(c[l]["delta"]) for l in range(L)]
    abar = [np.zeros_like(c[l]["a"]) for l in range(L)]
    Jbar = [np.zeros_like(c[l]["J"]) for l in range(L)]
    Jqbar = [np.zeros_like(c[l]["Jq"]) for l in range(L)]
    Pbar = [np.zeros_like(c[l]["P"]) for l in range(L)]

    # R1: the Hessian terms
    for l, lay in enumerate(layers):
        A = lay["A"]
        HA = np.einsum("de,esj->dsj", Hbar, A)              # Hbar A_l[:, s, j]
        gbar[l] += 2.0 * np.einsum("dsj,dsj->j", A, HA)     # 2 <M_l[j], Hbar>
        bar[l]["A"] += 4.0 * c[l]["g"][None, None, :] * HA
        if l > 0:
            S = c[l]["delta"] * c[l]["s2"]
            J = c[l]["J"]
            Jbar[l] += 2.0 * S[:, None] * (J @ Hbar)
            Sbar = np.einsum("jd,de,je->j", J, Hbar, J)
            deltabar[l] += Sbar * c[l]["s2"]
            abar[l] += Sbar * c[l]["delta"] * c[l]["s3"]

    # R2: the gradient output y = s x + sum_l Jq_l^T g_l
    for l in range(L):
        Jqbar[l] += np.outer(c[l]["g"], ybar)
        gbar[l] += c[l]["Jq"] @ ybar

    # R3: the Jacobian recursion, last layer down to the first
    for l in range(L - 1, -1, -1):
        Jqbar[l] += Jbar[l]
        if l > 0:
            bar[l]["U"] += Jbar[l] @ c[l - 1]["Jz"].T
            Jzbar = layers[l]["U"].T @ Jbar[l]
            Jbar[l - 1] += c[l - 1]["s1"][:, None] * Jzbar
            abar[l - 1] += np.sum(Jzbar * c[l - 1]["J"], axis=1) * c[l - 1]["s2"]

    # R4: the quadratic-layer Jacobians Jq_l = W_l + 2 sum_s diag(P_s) A_s^T
    for l, lay in enumerate(layers):
        bar[l]["W"] += Jqbar[l]
        Pbar[l] += 2.0 * np.einsum("jd,dsj->js", Jqbar[l], lay["A"])
        bar[l]["A"] += 2.0 * np.einsum("js,jd->dsj", c[l]["P"], Jqbar[l])

    # R5: the backward-pass variables, first layer UP to the last
    for l in range(L):
        deltabar[l] += gbar[l] * c[l]["s1"]
        abar[l] += gbar[l] * c[l]["delta"] * c[l]["s2"]
        if l < L - 1:
            gbar[l + 1] += layers[l + 1]["U"] @ deltabar[l]
            bar[l + 1]["U"] += np.outer(c[l + 1]["g"], deltabar[l])
        else:
            wbar += deltabar[l]

    # R6: the forward pass, last layer down to the first
    zbar = psibar * w
    wbar += psibar * c[-1]["z"]
    for l in range(L - 1, -1, -1):
        abar[l] += zbar * c[l]["s1"]
        if l > 0:
            bar[l]["U"] += np.outer(abar[l], c[l - 1]["z"])
            zbar = layers[l]["U"].T @ abar[l]
        bar[l]["b"] += abar[l]
        bar[l]["W"] += np.outer(abar[l], x)
        Pbar[l] += 2.0 * c[l]["P"] * abar[l][:, None]
        bar[l]["A"] += np.einsum("d,js->dsj", x, Pbar[l])

    return pack(bar, wbar, D, widths, r)


def loss(theta, D, widths, r, s, x, psibar, ybar, Hbar):
    """L = psibar psi + ybar . grad psi + <Hbar, Hess psi> at one sample (what theta_grad differentiates)."""
    psi, grad, H, _ = evaluate(theta, D, widths, r, s, x)
    return psibar * psi + ybar @ grad + np.sum(Hbar * H)


# ---------------------------------------------------------------------------------------------
# Random convex networks (MATH.md sec. 2 initialisation, then made convex)
# ---------------------------------------------------------------------------------------------

def random_theta(rng, D, widths, r):
    """Every entry ~ N(0, 1) / sqrt(max width); then |U_l| and |w| so that the network is convex."""
    theta = rng.standard_normal(param_count(D, widths, r)) / np.sqrt(max(widths))
    layers, w = unpack(theta, D, widths, r)
    for lay in layers[1:]:
        lay["U"] = np.abs(lay["U"])
    return pack(layers, np.abs(w), D, widths, r)

"""LSTM, GRU and SimpleRNN in NumPy (docs/semantics.md §6, §7, §26).

Shapes: x (B, T, F); kernel (F, G*u); recurrent_kernel (u, G*u) with G = 4 gates
[i | f | c | o] for the LSTM, G = 3 gates [z | r | h] for the GRU and G = 1 for the
SimpleRNN; u units.

The input projection of all time steps is one matmul; each step then does one
matmul with the recurrent kernel and the gate math.

Masks (B, T) bool: at a masked step a sample keeps its state, and its output
repeats the previously emitted output (zeros before the first unmasked step),
which is what Keras's TensorFlow and torch backends do.
"""

from __future__ import annotations

import numpy as np

from . import activations

F32 = np.float32


def _time_order(t_len, go_backwards, b, u):
    """The time steps in processing order; none when the state is empty (B = 0 or u = 0):
    every step would compute nothing, and T may be huge."""
    if b == 0 or u == 0:
        return range(0)
    return range(t_len - 1, -1, -1) if go_backwards else range(t_len)


def _scan(step, h0, t_len, mask, return_sequences, go_backwards):
    """The time loop of a cell with one state (GRU, SimpleRNN): h = step(t, h) for t in
    processing order, masked rows keeping h and repeating their last output. Returns
    (outputs, h_T): outputs (B, T, u) in processing order if return_sequences, else (B, u)."""
    b, u = h0.shape
    h = h0
    out = np.zeros((b, u), F32)  # previously emitted output
    seq = np.zeros((b, t_len, u), F32) if return_sequences else None
    for k, t in enumerate(_time_order(t_len, go_backwards, b, u)):
        h_new = step(t, h)
        if mask is None:
            h, out = h_new, h_new
        else:
            keep = mask[:, t, None]
            h = np.where(keep, h_new, h)
            out = np.where(keep, h_new, out)
        if seq is not None:
            seq[:, k] = out
    return (seq if return_sequences else out), h


def lstm_step(z, c, activation, recurrent_activation):
    """Gate math of one LSTM step; z = x_t @ W + h @ R + b, shape (B, 4u). Returns (h, c)."""
    u = c.shape[-1]
    i = activations.apply(recurrent_activation, z[:, 0 * u : 1 * u])
    f = activations.apply(recurrent_activation, z[:, 1 * u : 2 * u])
    g = activations.apply(activation, z[:, 2 * u : 3 * u])
    o = activations.apply(recurrent_activation, z[:, 3 * u : 4 * u])
    c_new = f * c + i * g
    h_new = o * activations.apply(activation, c_new)
    return h_new, c_new


def lstm_cell(x_t, h, c, kernel, recurrent_kernel, bias):
    """One LSTM step with the default activations: x_t (B, F), h and c (B, u) -> (h, c)."""
    z = x_t @ kernel + h @ recurrent_kernel
    if bias is not None:
        z += bias
    return lstm_step(z, c, "tanh", "sigmoid")


def lstm(
    x,
    kernel,
    recurrent_kernel,
    bias,
    h0,
    c0,
    mask,
    return_sequences,
    go_backwards,
    activation,
    recurrent_activation,
):
    """Run the LSTM over x (B, T, F). Returns (outputs, h_T, c_T).

    outputs is (B, T, u) in processing order if return_sequences, else (B, u).
    """
    b, t_len, _ = x.shape
    u = recurrent_kernel.shape[0]
    xw = x @ kernel  # (B, T, 4u): the input projection of every step at once
    if bias is not None:
        xw += bias
    h, c = h0, c0
    out = np.zeros((b, u), F32)  # previously emitted output
    seq = np.zeros((b, t_len, u), F32) if return_sequences else None
    for k, t in enumerate(_time_order(t_len, go_backwards, b, u)):
        z = xw[:, t] + h @ recurrent_kernel
        h_new, c_new = lstm_step(z, c, activation, recurrent_activation)
        if mask is None:
            h, c, out = h_new, c_new, h_new
        else:
            keep = mask[:, t, None]
            h = np.where(keep, h_new, h)
            c = np.where(keep, c_new, c)
            out = np.where(keep, h_new, out)
        if seq is not None:
            seq[:, k] = out
    return (seq if return_sequences else out), h, c


def gru(
    x,
    kernel,
    recurrent_kernel,
    bias,
    h0,
    mask,
    return_sequences,
    go_backwards,
    activation,
    recurrent_activation,
    reset_after,
):
    """Run the GRU over x (B, T, F). Returns (outputs, h_T).

    bias is (2, 3u) [input bias; recurrent bias] if reset_after, else (3u,), or None.
    """
    u = recurrent_kernel.shape[0]
    xw = x @ kernel  # (B, T, 3u)
    b_in = b_rec = None
    if bias is not None:
        if reset_after:
            b_in, b_rec = bias[0], bias[1]
        else:
            b_in = bias
    if b_in is not None:
        xw += b_in
    r_z, r_r, r_h = (recurrent_kernel[:, k * u : (k + 1) * u] for k in range(3))

    def step(t, h):
        x_z, x_r, x_h = xw[:, t, :u], xw[:, t, u : 2 * u], xw[:, t, 2 * u :]
        if reset_after:
            # The reset gate multiplies the recurrent term including its bias.
            hr = h @ recurrent_kernel
            if b_rec is not None:
                hr += b_rec
            z = activations.apply(recurrent_activation, x_z + hr[:, :u])
            r = activations.apply(recurrent_activation, x_r + hr[:, u : 2 * u])
            cand = activations.apply(activation, x_h + r * hr[:, 2 * u :])
        else:
            z = activations.apply(recurrent_activation, x_z + h @ r_z)
            r = activations.apply(recurrent_activation, x_r + h @ r_r)
            cand = activations.apply(activation, x_h + (r * h) @ r_h)
        return z * h + (F32(1) - z) * cand  # z weights the old state

    return _scan(step, h0, x.shape[1], mask, return_sequences, go_backwards)


def simple_rnn(
    x,
    kernel,
    recurrent_kernel,
    bias,
    h0,
    mask,
    return_sequences,
    go_backwards,
    activation,
):
    """Run Keras's SimpleRNN over x (B, T, F): h_t = activation(x_t @ W + b + h_{t-1} @ R),
    the sums in that order, as Keras's SimpleRNNCell. Returns (outputs, h_T)."""
    xw = x @ kernel  # (B, T, u)
    if bias is not None:
        xw += bias

    def step(t, h):
        return activations.apply(activation, xw[:, t] + h @ recurrent_kernel)

    return _scan(step, h0, x.shape[1], mask, return_sequences, go_backwards)

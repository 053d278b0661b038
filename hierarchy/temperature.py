"""Temperature scaling: probabilities that mean what they say, fitted on validation, no decision changed.

Label smoothing (0.2 in configs/lite2.toml) trains the models to be unsure on purpose: cascades right on 89–93% of
their validation images gave their top class 0.68–0.74 on average, and the reported ECE was 0.14–0.21 (docs/RESULTS.md). One scalar T per model, fitted by
validation log-loss, divides its logits: softmax(z / T). Arg-max and every threshold decision are unchanged
(a monotone map of each score), so macro-F1 and the gate's decisions stay exactly as trained; only the stated
confidence moves. T is folded into the output layer (`neurocascade.models.head.scale_output_logits`), so Keras,
TFLite and the INT8 runtime all carry it without a code path of their own.

    t = fit_temperature(val_probs[mask], y_val)          # from the model's own softmax outputs; None: leave it
    p = apply_temperature(probs, t)                      # what the folded model now outputs
    tau = float(apply_temperature(scores, t, binary=True))  # a gate score moved the same way
"""

from __future__ import annotations

import numpy as np

# The search range of T: far beyond any fitted value (0.27–0.55 on the 2026-12-04 chain's models).
T_BOUNDS = (0.02, 50.0)
_TINY = np.finfo(np.float64).tiny


def _log_probs(probs: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant (all softmax needs): log of the probabilities, zeros floored."""
    return np.log(np.maximum(np.asarray(probs, np.float64), _TINY))


def apply_temperature(probs: np.ndarray, temperature: float, binary: bool = False) -> np.ndarray:
    """softmax(log(probs) / T) row-wise; with `binary`, `probs` are P(class 0) of a two-class model (any shape)."""
    if binary:
        p = np.asarray(probs, np.float64)
        return apply_temperature(np.stack([p, 1.0 - p], axis=-1).reshape(-1, 2), temperature)[:, 0].reshape(p.shape)
    z = _log_probs(probs) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float | None:
    """The T minimising the mean log-loss of softmax(log(probs) / T) on these held-out images, or None.

    None when the log-loss has no minimum inside `T_BOUNDS`: it falls all the way to uniform outputs (the
    model's confidence says nothing on these images) or to hard 0/1 outputs (they are perfectly separated).
    Either limit would throw information away, so the model is then better left as trained.
    """
    from scipy.optimize import minimize_scalar  # training only, like choose_tau's bound

    labels = np.asarray(labels, np.int64)
    if len(labels) == 0:
        raise ValueError("no images to fit the temperature on")
    z = _log_probs(probs)
    rows = np.arange(len(labels))

    def log_loss(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[rows, labels]))

    low, high = np.log(T_BOUNDS)
    found = minimize_scalar(log_loss, bounds=(low, high), method="bounded", options={"xatol": 1e-6})
    at_edge = min(log_loss(low), log_loss(high)) <= found.fun + 1e-9  # no lower loss inside than at a bound
    return None if at_edge else float(np.exp(found.x))

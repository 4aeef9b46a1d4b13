"""Cox heads trained locally in each centre (torch): linear or a small MLP.

The loss is the Breslow negative log partial likelihood (mean over events). A
centre's loss uses only its own risk sets, so federated averaging of per-centre fits
approximates a Cox model stratified by centre; pooled training on the concatenated
data is the reference it is compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hccstrat.exceptions import ConfigError, DataValidationError, Problem, ValidationReport

__all__ = [
    "CentreData",
    "CoxHeadConfig",
    "build_model",
    "cox_partial_nll",
    "fit_pooled",
    "get_weights",
    "predict_risk",
    "set_weights",
    "train_local",
]


@dataclass
class CoxHeadConfig:
    """Architecture and local optimisation of the Cox head.

    Attributes
    ----------
    hidden : int
        0 for a linear Cox model, otherwise the width of one hidden layer (ReLU).
    lr : float
        Adam learning rate of the local steps.
    local_steps : int
        Full-batch optimisation steps per round in each centre.
    l2 : float
        Ridge penalty on the weights (added to the mean partial likelihood).
    seed : int
        Seed of the initial weights (the same in every centre).
    """

    hidden: int = 0
    lr: float = 0.05
    local_steps: int = 5
    l2: float = 1e-3
    seed: int = 0

    def check(self) -> CoxHeadConfig:
        """Raise :class:`ConfigError` on an invalid value; return self."""
        if self.hidden < 0 or self.local_steps < 1 or self.lr <= 0 or self.l2 < 0:
            raise ConfigError(
                f"invalid Cox head settings {self}",
                hint="hidden >= 0, local_steps >= 1, lr > 0, l2 >= 0",
            )
        return self


@dataclass
class CentreData:
    """One centre's covariates and survival target (never leaves the centre).

    Attributes
    ----------
    X : ndarray (n, p)
        Raw (unstandardised) covariates.
    time : ndarray (n,)
        Months.
    event : ndarray (n,) of bool
    name : str
    """

    X: np.ndarray
    time: np.ndarray
    event: np.ndarray
    name: str = "centre"
    _risk_idx: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, np.float64)
        self.time = np.asarray(self.time, np.float64)
        self.event = np.asarray(self.event, bool)
        n = len(self.time)
        report = ValidationReport(source=f"centre {self.name}")
        if self.X.ndim != 2 or self.X.shape[0] != n or self.event.shape != (n,):
            report.add(Problem(None, None, "X", self.X.shape, f"({n}, p) like time"))
        elif not np.isfinite(self.X).all():
            report.add(Problem(None, None, "X", "non-finite", "finite covariates (impute first)"))
        if n and (not np.isfinite(self.time).all() or (self.time < 0).any()):
            report.add(Problem(None, None, "time", "negative or missing", "months >= 0"))
        if report:
            raise DataValidationError(report)

    @property
    def n(self) -> int:
        """Number of patients."""
        return len(self.time)

    @property
    def y(self) -> np.ndarray:
        """sksurv structured survival target."""
        from hccstrat.survival import make_surv

        return make_surv(self.event, self.time)

    def risk_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Order by descending time and, per patient, the last index of its risk set."""
        order = np.argsort(-self.time, kind="stable")
        if self._risk_idx is None:
            t = self.time[order]
            # risk set of patient i (in this order): every j with t_j >= t_i, i.e. up to
            # the last position holding the same time (Breslow ties)
            self._risk_idx = np.searchsorted(-t, -t, side="right") - 1
        return order, self._risk_idx


def _torch():
    from hccstrat.distributed._lazy import require

    return require("torch", "deep")


def build_model(n_features: int, cfg: CoxHeadConfig):
    """The Cox head: ``Linear(p, 1)`` or ``Linear(p, h) → ReLU → Linear(h, 1)`` (no bias)."""
    torch = _torch()
    nn = torch.nn
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(cfg.seed)
    try:
        if cfg.hidden:
            model = nn.Sequential(
                nn.Linear(n_features, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 1, bias=False)
            )
        else:
            model = nn.Sequential(nn.Linear(n_features, 1, bias=False))
            nn.init.zeros_(model[0].weight)
    finally:
        torch.random.set_rng_state(gen_state)
    return model.double()


def get_weights(model) -> list[np.ndarray]:
    """Model parameters as numpy arrays (Flower's NDArrays)."""
    return [p.detach().cpu().numpy().copy() for p in model.parameters()]


def set_weights(model, weights: list[np.ndarray]) -> None:
    """Load numpy arrays into the model (shapes must match)."""
    torch = _torch()
    params = list(model.parameters())
    if len(params) != len(weights):
        raise ConfigError(
            f"received {len(weights)} weight arrays, the model has {len(params)}",
            hint="server and clients must use the same --hidden setting",
        )
    with torch.no_grad():
        for p, w in zip(params, weights, strict=True):
            if tuple(p.shape) != tuple(np.shape(w)):
                raise ConfigError(
                    f"weight shape {np.shape(w)} does not match the model's {tuple(p.shape)}",
                    hint="server and clients must use the same covariates and --hidden",
                )
            p.copy_(torch.as_tensor(np.asarray(w), dtype=p.dtype))


def cox_partial_nll(eta, data: CentreData):
    """Breslow negative log partial likelihood, averaged over events (torch scalar)."""
    torch = _torch()
    order, ridx = data.risk_index()
    e = eta.reshape(-1)[torch.as_tensor(order)]
    ev = torch.as_tensor(data.event[order])
    n_events = max(int(ev.sum()), 1)
    lcse = torch.logcumsumexp(e, dim=0)[torch.as_tensor(ridx)]
    return -((e - lcse) * ev).sum() / n_events


def _standardise(X: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return (X - mean) / np.where(sd > 0, sd, 1.0)


def train_local(
    model,
    data: CentreData,
    mean: np.ndarray,
    sd: np.ndarray,
    cfg: CoxHeadConfig,
    *,
    proximal_mu: float = 0.0,
    steps: int | None = None,
) -> float:
    """Run ``cfg.local_steps`` full-batch Adam steps on one centre's data.

    Parameters
    ----------
    model : torch module from :func:`build_model`
    data : CentreData
    mean, sd : ndarray (p,)
        Standardisation shared by every centre (see the statistics round).
    cfg : CoxHeadConfig
    proximal_mu : float
        FedProx term ``mu/2 ||w - w_global||²`` (0 = FedAvg).
    steps : int, optional
        Override of ``cfg.local_steps`` (pooled training uses more).

    Returns
    -------
    float
        Loss after the last step.
    """
    torch = _torch()
    x = torch.as_tensor(_standardise(data.X, mean, sd))
    w0 = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loss = torch.tensor(float("nan"))
    for _ in range(steps or cfg.local_steps):
        opt.zero_grad()
        loss = cox_partial_nll(model(x), data)
        reg = sum((p**2).sum() for p in model.parameters())
        total = loss + cfg.l2 * reg
        if proximal_mu > 0:
            total = total + proximal_mu / 2 * sum(
                ((p - q) ** 2).sum() for p, q in zip(model.parameters(), w0, strict=True)
            )
        total.backward()
        opt.step()
    return float(loss.detach())


def predict_risk(model, X: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Linear predictor (log relative hazard) for raw covariates."""
    torch = _torch()
    with torch.no_grad():
        x = torch.as_tensor(_standardise(np.asarray(X, np.float64), mean, sd))
        return model(x).reshape(-1).numpy().copy()


def fit_pooled(
    centres: list[CentreData], cfg: CoxHeadConfig, *, steps: int = 300
) -> tuple[object, np.ndarray, np.ndarray]:
    """Reference: the same Cox head trained on the pooled data of every centre.

    Returns
    -------
    (model, mean, sd)
    """
    torch = _torch()
    cfg.check()
    X = np.concatenate([c.X for c in centres])
    pooled = CentreData(
        X,
        np.concatenate([c.time for c in centres]),
        np.concatenate([c.event for c in centres]),
        name="pooled",
    )
    mean, sd = X.mean(axis=0), X.std(axis=0)
    model = build_model(X.shape[1], cfg)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        train_local(model, pooled, mean, sd, cfg, steps=steps)
    return model, mean, sd

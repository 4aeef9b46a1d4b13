"""Federated Cox training across centres with Flower (FedAvg / FedProx).

Each centre keeps its patients: a :class:`CentreClient` trains the shared Cox head
(:mod:`hccstrat.distributed._fed_models`) on local data and uploads weights only,
optionally clipped and noised (differential privacy) and masked (secure aggregation,
:mod:`hccstrat.distributed._secure`). The server strategy (Flower's ``FedAvg`` or
``FedProx`` with the additions below) averages them.

Round 1 is a *statistics round*: centres upload the mean and mean square of each
covariate, the server averages them (weighted by centre size, which gives the pooled
moments exactly) and every later round standardises with these shared values.
Evaluation rounds ask each centre for its local C-index and standard error and pool
them by random-effects meta-analysis (:mod:`hccstrat.distributed.fed_eval`).

The same client and strategy classes run over Flower's gRPC transport
(:func:`hccstrat.distributed.flower_net.run_server` / ``run_client``) or in one
process (:func:`simulate`): Flower's own ``Server`` loop drives in-process client
proxies, which avoids the Ray-based simulation engine on small machines.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from hccstrat.distributed._fed_models import (
    CentreData,
    CoxHeadConfig,
    build_model,
    get_weights,
    predict_risk,
    set_weights,
    train_local,
)
from hccstrat.distributed._lazy import require_flwr
from hccstrat.exceptions import ConfigError

require_flwr()

from flwr.client import Client, NumPyClient  # noqa: E402
from flwr.common import (  # noqa: E402
    DisconnectRes,
    EvaluateIns,
    FitIns,
    GetPropertiesIns,
    ndarrays_to_parameters,
    parameters_to_ndarrays,
)
from flwr.server import Server, SimpleClientManager  # noqa: E402
from flwr.server.client_proxy import ClientProxy  # noqa: E402
from flwr.server.strategy import FedAvg, FedProx  # noqa: E402
from flwr.server.strategy.aggregate import aggregate  # noqa: E402

__all__ = [
    "CentreClient",
    "FederatedConfig",
    "FederatedResult",
    "InProcessClientProxy",
    "make_strategy",
    "simulate",
]

log = logging.getLogger(__name__)
ALGORITHMS = ("fedavg", "fedprox")


@dataclass
class FederatedConfig:
    """Settings of a federated run (server and clients).

    Attributes
    ----------
    algorithm : {"fedavg", "fedprox"}
    rounds : int
        Training rounds (the statistics round comes on top).
    proximal_mu : float
        FedProx proximal weight (ignored by FedAvg).
    head : CoxHeadConfig
    secure : bool
        Server side: ask for pairwise-masked uploads (every centre must report each
        round).
    secret : str or None
        Client side: the federation secret of the centres (never given to the server).
        A centre holding one refuses to upload unmasked weights.
    clip : float or None
        L2 clipping norm of each centre's update (DP); None = no DP.
    noise_multiplier : float
        Gaussian noise std as a multiple of ``clip``.
    eval_every : int
        Federated evaluation every this many training rounds (and after the last).
    n_bootstrap : int
        Resamples for each centre's C-index standard error.
    seed : int
    """

    algorithm: str = "fedavg"
    rounds: int = 30
    proximal_mu: float = 0.1
    head: CoxHeadConfig = field(default_factory=CoxHeadConfig)
    secure: bool = False
    secret: str | None = None
    clip: float | None = None
    noise_multiplier: float = 0.0
    eval_every: int = 10
    n_bootstrap: int = 200
    seed: int = 0

    def check(self) -> FederatedConfig:
        """Raise :class:`ConfigError` on an invalid setting; return self."""
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"unknown algorithm {self.algorithm!r}", hint=f"use {ALGORITHMS}")
        if self.rounds < 1 or self.eval_every < 1:
            raise ConfigError("rounds and eval_every must be >= 1", hint="e.g. --rounds 30")
        if self.clip is not None and self.clip <= 0:
            raise ConfigError(f"clip={self.clip} must be > 0", hint="e.g. --clip 1.0")
        self.head.check()
        return self


class CentreClient(NumPyClient):
    """One centre: trains and evaluates on local data, uploads aggregates only.

    Parameters
    ----------
    train : CentreData
    test : CentreData or None
        Local validation data (training data when None).
    cfg : FederatedConfig
    """

    def __init__(self, train: CentreData, test: CentreData | None, cfg: FederatedConfig):
        self.train = train
        self.test = test
        self.cfg = cfg
        self.rng = np.random.default_rng([cfg.seed, _stable_hash(train.name)])

    def get_properties(self, config):
        """The centre's name (used to order uploads and derive secure-aggregation masks)."""
        return {"centre": self.train.name}

    def get_parameters(self, config):
        """Initial global state: placeholder moments, then the seeded initial weights."""
        p = self.train.X.shape[1]
        model = build_model(p, self.cfg.head)
        return [np.zeros(p), np.ones(p), *get_weights(model)]

    def _upload(self, arrays, config) -> list[np.ndarray]:
        if not config.get("secure"):
            if self.cfg.secret:
                raise ConfigError(
                    f"centre {self.train.name} requires secure aggregation but the server "
                    "did not ask for masked uploads",
                    hint="start the server with --secure",
                )
            return arrays
        if not self.cfg.secret:
            raise ConfigError(
                "the server asks for secure aggregation but this centre has no secret",
                hint="give every centre the same --secret-file",
            )
        from hccstrat.distributed._secure import mask_update

        return mask_update(
            arrays,
            self.train.n,
            me=self.train.name,
            peers=str(config["peers"]).split(","),
            secret=str(self.cfg.secret),
            server_round=int(config["server_round"]),
        )

    def fit(self, parameters, config):
        """Statistics round (moments) or a training round (local Cox steps)."""
        metrics = {"centre": self.train.name}
        if config.get("task") == "stats":
            X = self.train.X
            arrays = [X.mean(axis=0), (X**2).mean(axis=0)]
            return self._upload(arrays, config), self.train.n, metrics
        mean, sd, *weights = parameters
        model = build_model(self.train.X.shape[1], self.cfg.head)
        set_weights(model, weights)
        loss = train_local(
            model, self.train, mean, sd, self.cfg.head,
            proximal_mu=float(config.get("proximal_mu", 0.0)),
        )
        new = get_weights(model)
        if self.cfg.clip is not None:
            from hccstrat.distributed._secure import clip_and_noise

            new, norm = clip_and_noise(
                new, weights, clip=self.cfg.clip,
                noise_multiplier=self.cfg.noise_multiplier, rng=self.rng,
            )
            metrics["update_norm"] = norm
        metrics["loss"] = loss
        return self._upload(new, config), self.train.n, metrics

    def evaluate(self, parameters, config):
        """Local C-index (bootstrap SE) and partial-likelihood loss on validation data."""
        from hccstrat.distributed._fed_models import cox_partial_nll
        from hccstrat.distributed.fed_eval import local_metrics

        torch = __import__("torch")
        data = self.test if self.test is not None else self.train
        mean, sd, *weights = parameters
        model = build_model(data.X.shape[1], self.cfg.head)
        set_weights(model, weights)
        eta = predict_risk(model, data.X, mean, sd)
        loss = float(cox_partial_nll(torch.as_tensor(eta), data))
        m = local_metrics(data.y, eta, centre=data.name, n_bootstrap=self.cfg.n_bootstrap,
                          seed=self.cfg.seed)
        return loss, data.n, m


def _stable_hash(text: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


class _HccStrategy:
    """Additions to Flower's FedAvg/FedProx: statistics round, secure sums, meta-analysis."""

    def _hcc_init(self, cfg: FederatedConfig) -> None:
        self.hcc_cfg = cfg
        self.current_: list[np.ndarray] | None = None
        self.names_: dict[str, str] = {}
        self.evaluations_: dict[int, pd.DataFrame] = {}
        self.meta_: dict[int, object] = {}

    def _peers(self, clients, server_round: int) -> list[str]:
        for c in clients:
            if c.cid not in self.names_:
                res = c.get_properties(GetPropertiesIns({}), timeout=None, group_id=server_round)
                self.names_[c.cid] = str(res.properties["centre"])
        names = [self.names_[c.cid] for c in clients]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate centre names {names}", hint="give unique --centre")
        return sorted(names)

    def configure_fit(self, server_round, parameters, client_manager):
        pairs = super().configure_fit(server_round, parameters, client_manager)
        self.current_ = parameters_to_ndarrays(parameters)
        extra = {"task": "stats" if server_round == 1 else "train", "server_round": server_round,
                 "secure": int(self.hcc_cfg.secure)}
        if self.hcc_cfg.secure:
            extra["peers"] = ",".join(self._peers([c for c, _ in pairs], server_round))
        return [(c, FitIns(ins.parameters, {**ins.config, **extra})) for c, ins in pairs]

    def aggregate_fit(self, server_round, results, failures):
        if failures:
            log.warning("round %d: %d centre(s) failed; round skipped", server_round,
                        len(failures))
            return None, {}
        if not results:
            return None, {}
        results = sorted(results, key=lambda r: str(r[1].metrics.get("centre", "")))
        uploads = [parameters_to_ndarrays(r.parameters) for _, r in results]
        sizes = [r.num_examples for _, r in results]
        if self.hcc_cfg.secure:
            from hccstrat.distributed._secure import decode_sum

            arrays = decode_sum(uploads, float(sum(sizes)))
        else:
            arrays = aggregate(list(zip(uploads, sizes, strict=True)))
        if self.current_ is None:  # configure_fit of the same round sets it
            raise RuntimeError("aggregate_fit called before configure_fit")
        if server_round == 1:
            mean, meansq = arrays
            sd = np.sqrt(np.clip(meansq - mean**2, 0.0, None))
            new = [mean, sd, *self.current_[2:]]
        else:
            new = [*self.current_[:2], *arrays]
        losses = [r.metrics["loss"] for _, r in results if "loss" in r.metrics]
        metrics = {"n_centres": len(results)}
        if losses:
            metrics["train_loss"] = float(np.average(losses, weights=sizes))
        norms = [r.metrics["update_norm"] for _, r in results if "update_norm" in r.metrics]
        if norms:
            metrics["max_update_norm"] = float(max(norms))
        return ndarrays_to_parameters(new), metrics

    def configure_evaluate(self, server_round, parameters, client_manager):
        last = server_round == self.hcc_cfg.rounds + 1
        if server_round == 1 or not (last or (server_round - 1) % self.hcc_cfg.eval_every == 0):
            return []
        return super().configure_evaluate(server_round, parameters, client_manager)

    def aggregate_evaluate(self, server_round, results, failures):
        from hccstrat.distributed.fed_eval import LOCAL_METRIC_COLUMNS, meta_analyse

        if not results:
            return None, {}
        rows = sorted((dict(r.metrics) for _, r in results), key=lambda m: m["centre"])
        table = pd.DataFrame(rows)[LOCAL_METRIC_COLUMNS]
        self.evaluations_[server_round] = table
        loss = float(np.average([r.loss for _, r in results],
                                weights=[r.num_examples for _, r in results]))
        out: dict = {"failures": len(failures)}
        if len(table) >= 2:
            meta = meta_analyse(table)
            self.meta_[server_round] = meta
            out.update(c_index_meta=meta.estimate, ci_low=meta.ci_low, ci_high=meta.ci_high,
                       tau2=meta.tau2, i2=meta.i2)
        return loss, out


class HccFedAvg(_HccStrategy, FedAvg):
    """Flower FedAvg with hccstrat's statistics round, secure sums and meta-analysis."""


class HccFedProx(_HccStrategy, FedProx):
    """Flower FedProx (proximal term sent to the centres) with hccstrat's additions."""


def make_strategy(cfg: FederatedConfig, n_centres: int):
    """The server strategy for ``n_centres`` centres (all take part in every round)."""
    cfg.check()
    kw = dict(fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=n_centres,
              min_evaluate_clients=n_centres, min_available_clients=n_centres,
              accept_failures=not cfg.secure)
    if cfg.algorithm == "fedprox":
        strat = HccFedProx(proximal_mu=cfg.proximal_mu, **kw)
    else:
        strat = HccFedAvg(**kw)
    strat._hcc_init(cfg)
    return strat


class InProcessClientProxy(ClientProxy):
    """A Flower client proxy that calls a client object in the same process."""

    def __init__(self, cid: str, client: Client):
        super().__init__(cid)
        self.client = client

    def get_properties(self, ins, timeout, group_id):
        return self.client.get_properties(ins)

    def get_parameters(self, ins, timeout, group_id):
        return self.client.get_parameters(ins)

    def fit(self, ins, timeout, group_id):
        return self.client.fit(ins)

    def evaluate(self, ins: EvaluateIns, timeout, group_id):
        return self.client.evaluate(ins)

    def reconnect(self, ins, timeout, group_id):
        return DisconnectRes(reason="in-process")


@dataclass
class FederatedResult:
    """The trained global model and what the server saw.

    Attributes
    ----------
    model : torch module
    mean_, sd_ : ndarray
        Standardisation from the statistics round.
    history : flwr History
    centre_metrics : DataFrame
        Last federated evaluation, one row per centre (aggregates only).
    meta : MetaResult or None
        Random-effects pooled C-index of that evaluation.
    config : FederatedConfig
    """

    model: object
    mean_: np.ndarray
    sd_: np.ndarray
    history: object
    centre_metrics: pd.DataFrame
    meta: object
    config: FederatedConfig

    def predict_risk(self, X) -> np.ndarray:
        """Log relative hazard for raw covariates (array or DataFrame)."""
        return predict_risk(self.model, np.asarray(X, np.float64), self.mean_, self.sd_)

    def save(self, path) -> None:
        """Write the global model (weights, standardisation, settings) as ``.npz``."""
        from hccstrat.distributed.flower_net import save_global

        save_global(path, self.mean_, self.sd_, get_weights(self.model), self.config)


def result_from_parameters(params, strategy, history, n_features: int) -> FederatedResult:
    """Build a :class:`FederatedResult` from the server's final parameters."""
    cfg = strategy.hcc_cfg
    mean, sd, *weights = parameters_to_ndarrays(params)
    model = build_model(n_features, cfg.head)
    set_weights(model, weights)
    last = max(strategy.evaluations_) if strategy.evaluations_ else None
    table = strategy.evaluations_.get(last, pd.DataFrame()) if last else pd.DataFrame()
    return FederatedResult(model, mean, sd, history, table, strategy.meta_.get(last), cfg)


def simulate(
    centres: dict[str, tuple[CentreData, CentreData | None]], cfg: FederatedConfig
) -> FederatedResult:
    """Run a federation in one process with Flower's server loop and in-process clients.

    Parameters
    ----------
    centres : dict
        Centre name → (training data, validation data or None).
    cfg : FederatedConfig

    Returns
    -------
    FederatedResult
    """
    cfg.check()
    if len(centres) < 2:
        raise ConfigError(f"federated training needs >= 2 centres, got {len(centres)}",
                          hint="split the cohort by its centre column")
    strategy = make_strategy(cfg, len(centres))
    cm = SimpleClientManager()
    for k, name in enumerate(sorted(centres)):
        train, test = centres[name]
        cm.register(InProcessClientProxy(str(k), CentreClient(train, test, cfg).to_client()))
    server = Server(client_manager=cm, strategy=strategy)
    log.info("federated simulation: %d centres, %s", len(centres), asdict(cfg) | {"secret": "*"})
    history, _ = server.fit(num_rounds=cfg.rounds + 1, timeout=None)
    p = next(iter(centres.values()))[0].X.shape[1]
    return result_from_parameters(server.parameters, strategy, history, p)

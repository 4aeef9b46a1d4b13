"""Real deployments: a Flower server and centre clients talking gRPC.

The server (coordinating site) runs :func:`run_server`; each hospital runs
:func:`run_client` next to its data. They use the same strategy and client classes as
:func:`hccstrat.distributed.federated.simulate`. Flower's ``start_server`` /
``start_client`` (its long-running gRPC transport) are used; TLS certificates can be
given for deployments outside a private network.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from hccstrat.distributed._fed_models import CentreData, CoxHeadConfig
from hccstrat.exceptions import InputFileError
from hccstrat.io.atomic import atomic_path

__all__ = ["load_global", "run_client", "run_server", "save_global"]

log = logging.getLogger(__name__)


def save_global(path, mean, sd, weights, cfg) -> None:
    """Save a global model (``.npz``: moments, weights, settings as JSON; no secret)."""
    settings = asdict(cfg)
    settings.pop("secret", None)
    arrays = {"mean": np.asarray(mean), "sd": np.asarray(sd)}
    arrays.update({f"w{k}": np.asarray(w) for k, w in enumerate(weights)})
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, settings=np.array(json.dumps(settings)), **arrays)


def load_global(path):
    """Load a model saved by :func:`save_global` as a ``FederatedResult``-like object."""
    from hccstrat.distributed._fed_models import build_model, set_weights
    from hccstrat.distributed.federated import FederatedConfig, FederatedResult

    try:
        with np.load(path) as z:
            settings = json.loads(str(z["settings"]))
            mean, sd = z["mean"], z["sd"]
            weights = [z[f"w{k}"] for k in range(sum(1 for n in z.files if n.startswith("w")))]
    except (OSError, KeyError, ValueError) as err:
        raise InputFileError(f"cannot read federated model {path}: {err}",
                             hint="give a .npz written by 'hccstrat federated'") from err
    head = CoxHeadConfig(**settings.pop("head"))
    cfg = FederatedConfig(head=head, **settings)
    model = build_model(len(mean), head)
    set_weights(model, weights)
    import pandas as pd

    return FederatedResult(model, mean, sd, None, pd.DataFrame(), None, cfg)


def run_server(address: str, cfg, n_centres: int, *, out: Path | None = None,
               certificates: tuple[bytes, bytes, bytes] | None = None):
    """Serve a federation over gRPC until ``cfg.rounds`` (+1 statistics round) are done.

    Parameters
    ----------
    address : str
        ``host:port`` to listen on, e.g. ``0.0.0.0:8080``.
    cfg : FederatedConfig
    n_centres : int
        Centres that must connect before training starts (all take part each round).
    out : Path, optional
        Where to save the global model (``.npz``) and the evaluation table (``.csv``).
    certificates : (ca, cert, key) bytes, optional
        TLS material.

    Returns
    -------
    FederatedResult
    """
    from flwr.server import Server, ServerConfig, SimpleClientManager, start_server

    from hccstrat.distributed.federated import make_strategy, result_from_parameters

    strategy = make_strategy(cfg, n_centres)
    server = Server(client_manager=SimpleClientManager(), strategy=strategy)
    history = start_server(server_address=address, server=server,
                           config=ServerConfig(num_rounds=cfg.rounds + 1),
                           strategy=strategy, certificates=certificates)
    from flwr.common import parameters_to_ndarrays

    n_features = len(parameters_to_ndarrays(server.parameters)[0])
    res = result_from_parameters(server.parameters, strategy, history, n_features)
    if out is not None:
        res.save(Path(out).with_suffix(".npz"))
        if not res.centre_metrics.empty:
            from hccstrat.io.atomic import atomic_write

            with atomic_write(Path(out).with_suffix(".csv")) as fh:
                res.centre_metrics.to_csv(fh, index=False)
    return res


def run_client(address: str, train: CentreData, test: CentreData | None, cfg, *,
               root_certificates: bytes | None = None, max_wait_s: float = 60.0) -> None:
    """Connect one centre to the server and serve its rounds until the server ends."""
    from flwr.client import start_client

    from hccstrat.distributed.federated import CentreClient

    client = CentreClient(train, test, cfg)
    start_client(server_address=address, client=client.to_client(),
                 insecure=root_certificates is None, root_certificates=root_certificates,
                 max_wait_time=max_wait_s)

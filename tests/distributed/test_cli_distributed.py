"""CLI: Ray batch commands and a real Flower federation over gRPC on localhost."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hccstrat.cli.distributed import app, federated_app

RUN = "from hccstrat.cli.distributed import federated_app as a; a()"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_distributed_wsi_and_score_commands(tiny_slides, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["wsi", str(tiny_slides), "--out", str(tmp_path / "w"),
                              "--stage", "qc"])
    assert res.exit_code == 0, res.output
    assert "3/4 ok" in res.output and "HCC-WSI-001" in res.output
    man = pd.read_csv(tmp_path / "w" / "manifest_qc.csv")
    assert sorted(man["slide_id"]) == ["broken", "s0", "s1", "s2"]

    # a federated model scored on Ray
    from hccstrat.distributed.fed_data import centres_from_cohort
    from hccstrat.distributed.federated import FederatedConfig, simulate
    from hccstrat.synthetic.cohort import generate_cohort

    data, names = centres_from_cohort(generate_cohort(300, 2, seed=1), seed=1)
    model = simulate(data, FederatedConfig(rounds=3, eval_every=3))
    model.save(tmp_path / "m.npz")
    X = pd.DataFrame(np.concatenate([tr.X for tr, _ in data.values()]), columns=names)
    X.to_csv(tmp_path / "X.csv", index=False)
    res = runner.invoke(app, ["score", str(tmp_path / "m.npz"), str(tmp_path / "X.csv"),
                              "--out", str(tmp_path / "s"), "--chunk-rows", "100"])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(tmp_path / "s" / "scores.csv", float_precision="round_trip")["risk"]
    np.testing.assert_allclose(got, model.predict_risk(X.to_numpy()), rtol=1e-12)


@pytest.mark.slow
def test_flower_server_and_clients_over_grpc(tmp_path):
    runner = CliRunner()
    res = runner.invoke(federated_app, ["export-demo", "--out", str(tmp_path / "data"),
                                        "--patients", "400", "--centres", "2"])
    assert res.exit_code == 0, res.output
    (tmp_path / "secret").write_text("shared-by-centres")
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-c", RUN, "server", "--centres", "2", "--address", addr,
         "--rounds", "2", "--eval-every", "2", "--secure", "--out", str(tmp_path / "g")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    clients = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, "client", str(p), "--centre", p.stem, "--address",
             addr, "--secret-file", str(tmp_path / "secret"), "--max-wait", "90"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for p in sorted((tmp_path / "data").glob("*.csv"))
    ]
    try:
        out, _ = server.communicate(timeout=150)
        logs = [c.communicate(timeout=60)[0] for c in clients]
    finally:
        for p in (server, *clients):
            if p.poll() is None:
                p.kill()
    assert server.returncode == 0, out[-3000:]
    assert all(c.returncode == 0 for c in clients), [x[-2000:] for x in logs]
    assert "pooled C-index (random effects)" in out
    table = pd.read_csv(tmp_path / "g.csv")
    assert sorted(table["centre"]) == ["CN01", "CN02"] and table["c_index"].between(0, 1).all()
    from hccstrat.distributed.flower_net import load_global

    model = load_global(tmp_path / "g.npz")
    X = pd.read_csv(tmp_path / "data" / "CN01.csv").drop(columns=["time", "event"])
    assert np.isfinite(model.predict_risk(X.to_numpy())).all()

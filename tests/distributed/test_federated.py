"""Federated Cox training with Flower: close to pooled, privacy options, evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("flwr", reason="flwr not installed (extra 'distributed')")

from hccstrat.distributed._fed_models import CoxHeadConfig
from hccstrat.distributed.federated import FederatedConfig, simulate


@pytest.fixture(scope="module")
def centres():
    from hccstrat.distributed.fed_data import centres_from_cohort
    from hccstrat.synthetic.cohort import generate_cohort

    data, names = centres_from_cohort(generate_cohort(1200, 4, seed=0), seed=0)
    assert len(data) == 4 and len(names) == 12
    return data


@pytest.mark.parametrize("algorithm", ["fedavg", "fedprox"])
def test_federated_c_index_within_0_02_of_pooled(centres, algorithm):
    from hccstrat.distributed.compare import compare_with_pooled

    cmp = compare_with_pooled(centres, FederatedConfig(algorithm=algorithm, rounds=30))
    assert cmp.c_pooled > 0.58  # the pooled model learns real signal
    assert abs(cmp.delta) < 0.02, cmp.summary()
    # federated evaluation (local C + random-effects pooling) agrees with the central one
    assert cmp.meta_federated.estimate == pytest.approx(cmp.c_federated, abs=0.02)
    assert cmp.meta_federated.k == 4
    assert list(cmp.centre_metrics.columns) == ["centre", "n", "n_events", "c_index", "c_se"]


def test_federated_evaluation_equals_central_meta_analysis(centres):
    from hccstrat.distributed.fed_eval import local_metrics, meta_analyse
    from hccstrat.evaluation import harrell_c, pool_metric

    cfg = FederatedConfig(rounds=10, eval_every=5)
    res = simulate(centres, cfg)
    assert sorted(res.history.metrics_distributed["c_index_meta"])[0][0] == 6  # rounds 6, 11
    rows, central = [], []
    for name in sorted(centres):
        test = centres[name][1]
        risk = res.predict_risk(test.X)
        rows.append(local_metrics(test.y, risk, centre=name, n_bootstrap=200, seed=0))
        central.append(harrell_c(test.y, risk))
    table = pd.DataFrame(rows)
    pd.testing.assert_frame_equal(table, res.centre_metrics)
    np.testing.assert_allclose(table["c_index"], central)
    meta = meta_analyse(table)
    assert meta.estimate == pytest.approx(res.meta.estimate, abs=1e-12)
    ref = pool_metric(central, table["c_se"], scale="logit")
    assert meta.estimate == pytest.approx(ref.estimate, abs=1e-12)
    assert meta.ci_low < meta.estimate < meta.ci_high


def test_statistics_round_gives_pooled_moments(centres):
    res = simulate(centres, FederatedConfig(rounds=1, eval_every=1))
    X = np.concatenate([tr.X for tr, _ in centres.values()])
    np.testing.assert_allclose(res.mean_, X.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(res.sd_, X.std(axis=0), rtol=1e-9)


def test_secure_aggregation_gives_the_same_model(centres):
    plain = simulate(centres, FederatedConfig(rounds=5, eval_every=5))
    secure = simulate(centres, FederatedConfig(rounds=5, eval_every=5, secure=True,
                                               secret="s3cret"))
    np.testing.assert_allclose(secure.mean_, plain.mean_, rtol=1e-6)
    X = centres["CN01"][1].X
    np.testing.assert_allclose(secure.predict_risk(X), plain.predict_risk(X), atol=1e-4)


def test_pairwise_masks_cancel_and_hide():
    from hccstrat.distributed._secure import decode_sum, mask_update

    rng = np.random.default_rng(0)
    names = ["A", "B", "C"]
    ups = {n: [rng.normal(size=(3, 2)), rng.normal(size=2)] for n in names}
    sizes = {"A": 10, "B": 30, "C": 60}
    masked = [mask_update(ups[n], sizes[n], me=n, peers=names, secret="k", server_round=2)
              for n in names]
    got = decode_sum(masked, 100.0)
    want = [sum(sizes[n] * ups[n][k] for n in names) / 100 for k in range(2)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-6)
    # one upload alone says nothing: it decodes to huge numbers unrelated to the update
    alone = masked[0][0].view(np.int64) / 2**20
    assert np.abs(alone).min() > 1e3
    # another round or secret gives other masks
    other = mask_update(ups["A"], 10, me="A", peers=names, secret="k", server_round=3)
    assert not np.array_equal(other[0], masked[0][0])


def test_dp_clipping_bounds_updates_and_noise_costs_little(centres):
    from hccstrat.distributed._secure import clip_and_noise

    new = [np.full(4, 3.0)]
    out, norm = clip_and_noise(new, [np.zeros(4)], clip=1.0, noise_multiplier=0.0,
                               rng=np.random.default_rng(0))
    assert norm == pytest.approx(6.0) and np.linalg.norm(out[0]) == pytest.approx(1.0)
    cfg = FederatedConfig(rounds=20, clip=0.5, noise_multiplier=0.02, eval_every=20)
    res = simulate(centres, cfg)
    plain = simulate(centres, FederatedConfig(rounds=20, eval_every=20))
    norms = [v for _, v in res.history.metrics_distributed_fit["max_update_norm"]]
    assert len(norms) == 20 and max(norms) > 0
    X = centres["CN02"][1].X
    assert not np.allclose(res.predict_risk(X), plain.predict_risk(X), atol=1e-3)
    assert res.meta.estimate > 0.58  # small noise: still discriminates


def test_mlp_head_trains_federatedly(centres):
    cfg = FederatedConfig(algorithm="fedprox", rounds=10, eval_every=10,
                          head=CoxHeadConfig(hidden=8, lr=0.02))
    res = simulate(centres, cfg)
    assert res.meta.estimate > 0.55
    assert len(list(res.model.parameters())) == 3


def test_bad_settings_raise_clear_errors(centres):
    from hccstrat.exceptions import ConfigError

    with pytest.raises(ConfigError, match="unknown algorithm"):
        simulate(centres, FederatedConfig(algorithm="fedsgd"))
    one = {"CN01": centres["CN01"]}
    with pytest.raises(ConfigError, match=">= 2 centres"):
        simulate(one, FederatedConfig())


def test_saved_global_model_predicts_the_same(centres, tmp_path):
    from hccstrat.distributed.flower_net import load_global

    res = simulate(centres, FederatedConfig(rounds=3, eval_every=3))
    res.save(tmp_path / "g.npz")
    back = load_global(tmp_path / "g.npz")
    X = centres["W01"][1].X
    np.testing.assert_array_equal(back.predict_risk(X), res.predict_risk(X))
    assert back.config.rounds == 3 and back.config.secret is None


def test_secret_and_server_mode_must_agree(centres):
    from hccstrat.distributed.federated import CentreClient
    from hccstrat.exceptions import ConfigError

    train, test = centres["CN01"]
    holder = CentreClient(train, test, FederatedConfig(secret="k"))
    with pytest.raises(ConfigError, match="requires secure aggregation"):
        holder.fit([], {"task": "stats", "secure": 0, "server_round": 1})
    plain = CentreClient(train, test, FederatedConfig())
    with pytest.raises(ConfigError, match="no secret"):
        plain.fit([], {"task": "stats", "secure": 1, "server_round": 1, "peers": "CN01,CN02"})


def test_missing_dependency_names_the_extra(monkeypatch):
    import sys

    from hccstrat.distributed._lazy import require_ray
    from hccstrat.exceptions import DependencyMissingError

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(DependencyMissingError) as err:
        require_ray()
    assert "hccstrat[distributed]" in str(err.value)

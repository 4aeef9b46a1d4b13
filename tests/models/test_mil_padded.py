"""Padded mini-batches in MIL: same outputs as bag by bag, and training still learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hccstrat.exceptions import ModelError
from hccstrat.models._mil_nets import GatedAttentionMIL, TransMILLite, pad_bags
from hccstrat.models.mil import MILModel


@pytest.mark.parametrize("net_cls", [GatedAttentionMIL, TransMILLite])
@pytest.mark.parametrize("n_out", [1, 3])
def test_padded_forward_equals_per_bag_forward(net_cls, n_out):
    torch.manual_seed(0)
    net = net_cls(12, n_out).eval()
    bags = [torch.randn(n, 12) for n in (5, 31, 1, 17)]
    x, mask = pad_bags(bags)
    assert x.shape == (4, 31, 12) and mask.sum().item() == 54
    with torch.no_grad():
        out, att, emb = net(x, mask)
        for i, b in enumerate(bags):
            o1, a1, z1 = net(b)
            assert torch.allclose(out[i], o1, atol=1e-5)
            assert torch.allclose(att[i, : len(b)], a1, atol=1e-5)
            assert torch.all(att[i, len(b):] == 0)
            assert torch.allclose(emb[i], z1, atol=1e-5)
            assert att[i].sum().item() == pytest.approx(1.0, abs=1e-5)
    # padding values do not leak in
    x2 = x.clone()
    x2[~mask] = 1e3
    with torch.no_grad():
        assert torch.allclose(net(x2, mask)[0], out, atol=1e-5)


def _toy(n_bags=120, seed=0):
    """Bags of Gaussian tiles; a bag is positive / high-risk when it holds signal tiles."""
    from hccstrat.survival import make_surv

    rng = np.random.default_rng(seed)
    bags, lab, frac = [], [], []
    for _ in range(n_bags):
        n = int(rng.integers(10, 60))
        f = rng.uniform(0, 0.5)
        x = rng.normal(size=(n, 8)).astype(np.float32)
        k = round(f * n)
        x[:k, 0] += 3.0
        bags.append(x[rng.permutation(n)])
        lab.append(int(f > 0.25))
        frac.append(k / n)
    frac = np.array(frac)
    t = rng.exponential(10 * np.exp(-10 * frac))
    c = rng.exponential(60, n_bags)
    return bags, np.array(lab), make_surv(t <= c, np.minimum(t, c))


@pytest.mark.parametrize("arch", ["gated", "transmil"])
def test_batched_training_beats_shuffled_labels(arch):
    bags, lab, y = _toy()
    tr, te = slice(0, 80), slice(80, None)
    kw = dict(arch=arch, epochs=12, batch_size=16, random_state=0)
    rng = np.random.default_rng(1)
    # survival (Cox loss within each padded batch)
    c = MILModel(task="survival", **kw).fit(bags[tr], y[tr]).score(bags[te], y[te])
    c_shuf = MILModel(task="survival", **kw).fit(bags[tr], y[tr][rng.permutation(80)]).score(
        bags[te], y[te])
    assert c >= 0.72 and c >= c_shuf + 0.1, (c, c_shuf)
    # classification (cross-entropy on the padded batch)
    acc = MILModel(task="classification", **kw).fit(bags[tr], lab[tr]).score(bags[te], lab[te])
    acc_shuf = MILModel(task="classification", **kw).fit(
        bags[tr], lab[tr][rng.permutation(80)]).score(bags[te], lab[te])
    assert acc >= 0.75 and acc >= acc_shuf + 0.1, (acc, acc_shuf)


def test_batched_inference_matches_single_bags_and_validates():
    bags, lab, _ = _toy(40)
    m = MILModel(task="classification", epochs=3, batch_size=8).fit(bags, lab)
    p_all = m.predict_proba(bags)
    att_all = m.attention(bags)
    for i in (0, 7, 39):
        assert np.allclose(m.predict_proba([bags[i]])[0], p_all[i], atol=1e-5)
        a = m.attention([bags[i]])[0]
        assert a.shape == (len(bags[i]),) and np.allclose(a, att_all[i], atol=1e-5)
    with pytest.raises(ModelError):
        MILModel(task="classification", batch_size=0).fit(bags, lab)

"""Encoder registry, builtin encoder signal, foundation loaders from tiny checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from hccstrat.encoders.builtin import FEATURE_NAMES
from hccstrat.encoders.registry import available_encoders, create_encoder, register_encoder
from hccstrat.exceptions import ConfigError, ModelError
from hccstrat.io.atomic import sha256_file


def test_registry_refuses_duplicates_and_unknown():
    assert {"builtin", "uni", "ctranspath", "timm"} <= set(available_encoders())
    with pytest.raises(ConfigError, match="already registered"):
        register_encoder("builtin", lambda: None)
    with pytest.raises(ConfigError, match="unknown encoder"):
        create_encoder("nope")


def test_builtin_encoder_separates_lymphoid_from_tumour(tmp_path):
    """Tiles from dense lymphoid areas have more small nuclei than tumour tiles."""
    from hccstrat.io.wsi import open_slide
    from hccstrat.synthetic.wsi import default_latent, read_truth, write_slide

    info = write_slide(
        tmp_path / "s.tiff",
        default_latent(lymphocyte_density=0.9),
        size=(2048, 2048),
        seed=5,
        artefacts=False,
        geojson=False,
    )
    labels, truth = read_truth(info.path)
    ds = truth["downsample"]
    enc = create_encoder("builtin")
    by_class = {}
    with open_slide(info.path) as s:
        for code in (1, 3):
            ys, xs = np.nonzero(labels == code)
            tiles = []
            for y, x in zip(ys, xs, strict=True):
                win = labels[y : y + 112 // ds, x : x + 112 // ds]
                if win.shape == (112 // ds,) * 2 and (win == code).all():
                    tiles.append(s.read_region((x * ds, y * ds), 0, (112, 112)))
                if len(tiles) == 12:
                    break
            assert len(tiles) >= 4
            by_class[code] = enc.encode(np.stack(tiles), mpp=0.5)
    k = FEATURE_NAMES.index("small_nuc_density_mm2")
    a = FEATURE_NAMES.index("nuc_area_mean_um2")
    assert by_class[3][:, k].mean() > 2 * by_class[1][:, k].mean()
    assert by_class[3][:, a].mean() < by_class[1][:, a].mean()
    assert by_class[1].shape[1] == len(FEATURE_NAMES) == enc.dim


def test_uni_tiny_checkpoint_checksum_and_arch(tmp_path):
    import timm
    import torch

    kw = {"embed_dim": 32, "depth": 1, "num_heads": 2}
    m = timm.create_model(
        "vit_large_patch16_224",
        pretrained=False,
        num_classes=0,
        init_values=1e-5,
        dynamic_img_size=True,
        **kw,
    )
    ck = tmp_path / "uni.pth"
    torch.save(m.state_dict(), ck)
    digest = sha256_file(ck)
    enc = create_encoder("uni", checkpoint=ck, sha256=digest, model_kwargs=kw, device="cpu")
    tiles = np.random.default_rng(0).integers(0, 255, (3, 256, 256, 3), dtype=np.uint8)
    f = enc.encode(tiles)
    assert f.shape == (3, 32) and enc.sha256 == digest
    with torch.inference_mode():  # same numbers as the original model on resized input
        x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bicubic", antialias=True)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        np.testing.assert_allclose(f, m.eval()((x - mean) / std).numpy(), atol=1e-4)
    with pytest.raises(ModelError, match="checksum mismatch"):
        create_encoder("uni", checkpoint=ck, sha256="0" * 64, model_kwargs=kw)
    with pytest.raises(ModelError, match="does not match"):
        create_encoder("uni", checkpoint=ck, model_kwargs={**kw, "embed_dim": 64})
    with pytest.raises(ModelError, match="needs a local checkpoint"):
        create_encoder("uni", model_kwargs=kw)


def test_ctranspath_and_timm_by_name(tmp_path):
    import timm
    import torch

    from hccstrat.encoders.foundation import _conv_stem

    kw = {"embed_dim": 16, "depths": (1, 1, 1, 1), "num_heads": (1, 1, 1, 1)}
    m = timm.create_model(
        "swin_tiny_patch4_window7_224",
        pretrained=False,
        num_classes=0,
        embed_layer=_conv_stem(),
        **kw,
    )
    ck = tmp_path / "ctp.pth"
    torch.save({"model": m.state_dict()}, ck)
    enc = create_encoder("ctranspath", checkpoint=ck, sha256=sha256_file(ck), model_kwargs=kw)
    assert enc.encode(np.zeros((2, 224, 224, 3), np.uint8)).shape == (2, 128)
    r = timm.create_model("resnet18", pretrained=False, num_classes=0)
    ck2 = tmp_path / "r18.pth"
    torch.save(r.state_dict(), ck2)
    e2 = create_encoder("timm:resnet18", checkpoint=ck2, sha256=sha256_file(ck2))
    assert e2.dim == 512 and e2.encode(np.zeros((1, 224, 224, 3), np.uint8)).shape == (1, 512)

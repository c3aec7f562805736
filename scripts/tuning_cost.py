"""What a tuning job's trials cost in instance time, with and without shared backbone features.

`make tune` prints it before it creates anything (DRY_RUN=1 too), for the two plans:
- every trial runs the backbone: each of the `max_jobs` trials passes every train and valid image through the
  frozen backbone on training.instance_type, then trains the head on the features;
- shared features: one feature job passes them once on training.instance_type; each trial reads the cache
  (hashes each image file to find its entry) and trains the head on tuning.cached_instance_type.
Compute only, at the trials' maximum epochs (early stopping only shortens them): start-up and data download
are not counted (one job more with shared features: the feature job). Prices come from tuning.prices.
"""
from __future__ import annotations

from dataclasses import dataclass

# Measured by `python -m benchmarks.bench_tuning_cost` on this project's 2-core machine, shared with two other
# sessions' jobs (no GPU; 2026-12-01; the sample data of `make data`), per image:
# - the frozen ResNet-50 pass at 224 px, JPEG decoding and preprocessing included (0.559 s). A CPU figure: on a
#   GPU instance it is far lower, so the estimate of the backbone passes is an upper bound; the benchmark prints
#   the figure of the machine it runs on (run it there, or divide a feature job's time by its image count);
BACKBONE_SECONDS_PER_IMAGE = 0.56
# - one epoch of the head on cached features per train+valid image, data loading included (0.0057 s), CPU;
HEAD_SECONDS_PER_IMAGE_EPOCH = 0.0057
# - reading the cache: the SHA-256 of the image file that finds its entry (4.3e-05 s), CPU.
CACHE_READ_SECONDS_PER_IMAGE = 4.3e-05


@dataclass(frozen=True)
class Rates:
    backbone: float = BACKBONE_SECONDS_PER_IMAGE
    head: float = HEAD_SECONDS_PER_IMAGE_EPOCH
    cache_read: float = CACHE_READ_SECONDS_PER_IMAGE


@dataclass(frozen=True)
class Plan:
    name: str
    seconds: dict[str, float]  # instance type -> instance-seconds

    def hours(self) -> dict[str, float]:
        return {kind: seconds / 3600 for kind, seconds in self.seconds.items()}

    def price(self, prices: dict[str, float]) -> float | None:
        """USD, when every instance type of the plan has a price."""
        if not all(kind in prices for kind in self.seconds):
            return None
        return sum(hours * prices[kind] for kind, hours in self.hours().items())


def _add(seconds: dict[str, float], kind: str, value: float) -> None:
    seconds[kind] = seconds.get(kind, 0.0) + value


def plans(trials: int, images: int, epochs: int, training_type: str, cached_type: str,
          rates: Rates = Rates()) -> tuple[Plan, Plan]:
    """(every trial runs the backbone, shared features) for `trials` trials over `images` train+valid images."""
    head = epochs * images * rates.head
    every = {}
    _add(every, training_type, trials * (images * rates.backbone + head))
    shared = {}
    _add(shared, training_type, images * rates.backbone)  # the feature job
    _add(shared, cached_type, trials * (images * rates.cache_read + head))
    return Plan("every trial runs the backbone", every), Plan("shared features", shared)


def describe(plan_pair: tuple[Plan, Plan], prices: dict[str, float], shared_possible: bool = True,
             rates: Rates = Rates()) -> list[str]:
    """The estimate as lines (make tune prefixes them with #)."""
    lines = []
    for plan in plan_pair if shared_possible else plan_pair[:1]:
        parts = [f"{hours:.3g} h {kind}" for kind, hours in plan.hours().items()]
        cost = plan.price(prices)
        missing = sorted(kind for kind in plan.seconds if kind not in prices)
        money = (f" = ${cost:.2f}" if cost is not None else
                 f" (no price for {', '.join(missing)} in tuning.prices)")
        lines.append(f"{plan.name}: {' + '.join(parts)}{money}")
    every, shared = plan_pair
    if shared_possible:
        lines.append(f"instance-seconds: {sum(every.seconds.values()):.0f} vs {sum(shared.seconds.values()):.0f}")
    lines.append(f"(compute only, at most epochs; backbone {rates.backbone:g} s/image measured on a 2-core CPU, an "
                 f"upper bound for a GPU type; head {rates.head:g} s/image/epoch; see scripts/tuning_cost.py)")
    return lines

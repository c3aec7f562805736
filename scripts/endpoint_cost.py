"""What an endpoint will cost, printed by `make deploy` (and its dry run) before it creates anything.

- realtime: instances are billed every hour they run: instance count x USD/hour x 730 hours a month (with
  auto scaling, the range from its minimum to its maximum);
- async: the same while it cannot scale to zero; with async.scale_to_zero, nothing while idle, and per 1,000
  requests the instance-seconds they take at the measured latency, one request at a time (an upper bound when
  an instance serves several at once), plus the instance kept after a burst until scale-in (its cooldown);
- serverless: per 1,000 requests, the GB-seconds of compute: latency x memory.
Prices are the user's (endpoint.prices, serverless.price_per_gb_second): without them, hours or seconds only.
Compute only: storage, data processed, and requests' transfer are not counted.
"""
from __future__ import annotations

from dataclasses import dataclass

HOURS_PER_MONTH = 730
# The serving stack's warm latency for one 224x224 JPEG, p50, measured by `python -m benchmarks.bench_cold_start`
# (EfficientNet-Lite0, one client, 2 CPUs shared with other work at load ~7.5, no GPU; 2026-12-06: 55.0 ms, the
# median of 3 rounds; 128 ms at load ~10, 22.7 ms on the idle machine with make bench-endpoint). A ResNet-50
# takes longer: give the latency you measured (make bench-endpoint, or the endpoint's ModelLatency) as LATENCY_MS=.
MEASURED_LATENCY_MS = 55.0


@dataclass(frozen=True)
class Endpoint:
    """What the estimate needs of the settings."""
    type: str                       # realtime | serverless | async
    instance_type: str
    instance_count: int
    autoscaling: bool = False
    min_instances: int = 1
    max_instances: int = 1
    scale_to_zero: bool = False     # async only
    scale_in_seconds: int = 600     # async: how long an idle instance stays before scale-in
    memory_mb: int = 0              # serverless only
    prices: dict[str, float] | None = None
    price_per_gb_second: float | None = None


def _usd(value: float) -> str:
    """Cents for a dollar or more (and nothing); three significant digits below, where cents would show $0.00."""
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:.3g}"


def _money(value: float | None) -> str:
    return "" if value is None else f" = {_usd(value)}"


def monthly_instances(endpoint: Endpoint) -> tuple[int, int]:
    """(fewest, most) instances running through a month."""
    if endpoint.type == "async" and endpoint.scale_to_zero:
        return 0, endpoint.max_instances
    if endpoint.autoscaling:
        return endpoint.min_instances, endpoint.max_instances
    return endpoint.instance_count, endpoint.instance_count


def describe(endpoint: Endpoint, latency_ms: float = MEASURED_LATENCY_MS) -> list[str]:
    """The estimate as lines (make deploy prefixes them with #)."""
    price = (endpoint.prices or {}).get(endpoint.instance_type)
    no_price = f" (no price for {endpoint.instance_type} in endpoint.prices)"
    lines = []
    if endpoint.type == "serverless":
        gb_seconds = 1000 * latency_ms / 1000 * endpoint.memory_mb / 1024
        cost = None if endpoint.price_per_gb_second is None else gb_seconds * endpoint.price_per_gb_second
        lines.append(f"serverless, {endpoint.memory_mb} MB: nothing while idle; per 1,000 requests {gb_seconds:.3g} "
                     f"GB-s{_money(cost) if cost is not None else ' (no serverless.price_per_gb_second)'}")
        lines.append("(a cold start after idle time adds the stack's start-up to a request: see "
                     "docs/measurements.md)")
    else:
        low, high = monthly_instances(endpoint)
        hours = [n * HOURS_PER_MONTH for n in (low, high)]
        money = ("" if price is None else
                 f" = {_usd(hours[0] * price)}" + (f" to {_usd(hours[1] * price)}" if high != low else ""))
        span = f"{low}" if low == high else f"{low} to {high}"
        lines.append(f"{endpoint.type}, {span} x {endpoint.instance_type}: {hours[0]:,.0f}"
                     + (f" to {hours[1]:,.0f}" if high != low else "") + f" instance-hours a month{money}"
                     + ("" if price is not None else no_price))
        if endpoint.type == "async" and endpoint.scale_to_zero:
            seconds = 1000 * latency_ms / 1000
            per_request = None if price is None else seconds / 3600 * price
            tail = None if price is None else endpoint.scale_in_seconds / 3600 * price
            lines.append(f"async from zero: per 1,000 requests {seconds:.3g} instance-seconds{_money(per_request)}, "
                         f"plus {endpoint.scale_in_seconds} s of an idle instance after each burst{_money(tail)}")
    per_request = endpoint.type == "serverless" or (endpoint.type == "async" and endpoint.scale_to_zero)
    lines.append(f"(compute only; at {latency_ms:g} ms a request, measured on a 2-core CPU with EfficientNet-Lite0 "
                 f"unless LATENCY_MS= gives yours; see scripts/endpoint_cost.py)" if per_request else
                 "(compute only: the instances' hours; see scripts/endpoint_cost.py)")
    return lines

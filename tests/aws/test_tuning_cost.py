"""make tune's cost estimate (scripts/tuning_cost.py): the instance time of both plans from the per-image
figures and the trial count, priced where tuning.prices has the types, printed before anything is created."""
from __future__ import annotations

import pytest

from aws_support import write_settings
from scripts import tuning_cost
from scripts.aws import tune
from test_aws_dry_run import requests_in


def test_plans_count_one_backbone_pass_per_trial_or_one_in_all():
    rates = tuning_cost.Rates(backbone=0.01, head=0.001, cache_read=0.0001)
    every, shared = tuning_cost.plans(trials=4, images=1000, epochs=30, training_type="ml.g4dn.xlarge",
                                      cached_type="ml.m5.large", rates=rates)
    assert every.seconds == {"ml.g4dn.xlarge": pytest.approx(4 * (1000 * 0.01 + 30 * 1000 * 0.001))}
    assert shared.seconds == {"ml.g4dn.xlarge": pytest.approx(1000 * 0.01),
                              "ml.m5.large": pytest.approx(4 * (1000 * 0.0001 + 30 * 1000 * 0.001))}
    prices = {"ml.g4dn.xlarge": 0.736, "ml.m5.large": 0.115}
    assert every.price(prices) == pytest.approx(160 / 3600 * 0.736)
    assert shared.price(prices) == pytest.approx(10 / 3600 * 0.736 + 120.4 / 3600 * 0.115)
    assert shared.price({"ml.g4dn.xlarge": 0.736}) is None  # not every type priced: hours only
    lines = tuning_cost.describe((every, shared), {"ml.g4dn.xlarge": 0.736}, rates=rates)
    assert lines[0] == "every trial runs the backbone: 0.0444 h ml.g4dn.xlarge = $0.03"
    assert "(no price for ml.m5.large in tuning.prices)" in lines[1] and lines[2] == "instance-seconds: 160 vs 130"


@pytest.mark.slow
def test_dry_run_prints_both_plans_before_the_requests_it_would_send(tmp_path, monkeypatch, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    data = tmp_path / "set"
    for split, count in (("train", 3), ("valid", 2), ("test", 4)):
        (data / split / "a").mkdir(parents=True)
        for n in range(count):
            (data / split / "a" / f"{n}.jpg").write_bytes(f"{split}{n}".encode())
    path = write_settings(tmp_path / "s.yaml", **{"tuning.prices": {"ml.g4dn.xlarge": 0.736, "ml.m5.large": 0.115}})
    assert tune.main(["--settings", str(path), "--dry-run", "--data", str(data), "--name", "img-clf-1"]) == 0
    out = capsys.readouterr().out
    every, shared = tuning_cost.plans(4, 5, 30, "ml.g4dn.xlarge", "ml.m5.large")
    assert "# estimate for 4 trials over 5 train+valid images, up to 30 epochs (this run: shared features;" in out
    assert f"#   every trial runs the backbone: {every.hours()['ml.g4dn.xlarge']:.3g} h ml.g4dn.xlarge = $" in out
    price = shared.price({"ml.g4dn.xlarge": 0.736, "ml.m5.large": 0.115})
    assert f"+ {shared.hours()['ml.m5.large']:.3g} h ml.m5.large = ${price:.2f}" in out
    assert out.index("# estimate") < out.index("sagemaker.CreateTrainingJob")
    assert [n for n, _ in requests_in(out)][-2:] == ["sagemaker.CreateTrainingJob",
                                                      "sagemaker.CreateHyperParameterTuningJob"]


def test_prices_setting_is_checked(tmp_path):
    from scripts.aws import settings as S

    with pytest.raises(S.SettingsError, match="not a SageMaker training instance type"):
        S.load(write_settings(tmp_path / "a.yaml", **{"tuning.prices": {"m5.large": 0.1}}))
    with pytest.raises(S.SettingsError, match="must be a number of USD per hour"):
        S.load(write_settings(tmp_path / "b.yaml", **{"tuning.prices": {"ml.m5.large": "cheap"}}))
    assert S.load(write_settings(tmp_path / "c.yaml")).prices == {}

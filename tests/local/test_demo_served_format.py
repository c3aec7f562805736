"""The demo's lines about the format its endpoint served, from the evaluation report's side-by-side run."""
import json

from scripts.local.demo import served_format_lines


def test_the_demo_says_what_the_served_format_changes(tmp_path):
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"formats": [
        {"format": "torch", "served": False, "accuracy": 0.80, "images_per_second": 10.0, "gate": None},
        {"format": "fp32", "served": True, "accuracy": 0.805, "images_per_second": 30.0,
         "gate": {"accepted": True, "figures": {}}},
        {"format": "int8", "served": False, "accuracy": None, "images_per_second": None,
         "gate": {"accepted": False, "reason": "it agrees with PyTorch's top-1 on 95.0 % of the valid images"}},
    ]}))
    lines = served_format_lines(evaluation)
    assert lines[0].startswith("Served format: fp32")
    assert "3.0x PyTorch's forward speed" in lines[1] and "80.5% vs PyTorch's 80.0% (+0.5 points)" in lines[1]
    assert lines[2] == ("  int8 refused by the accuracy gate: it agrees with PyTorch's top-1 on 95.0 % of the valid "
                        "images")


def test_a_model_served_with_pytorch_has_nothing_to_compare(tmp_path):
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps({"formats": [{"format": "torch", "served": True, "accuracy": 0.8,
                                                   "images_per_second": 10.0, "gate": None}]}))
    assert served_format_lines(evaluation) == ["Served format: torch (the fastest the accuracy gate accepted on the "
                                               "valid images)"]

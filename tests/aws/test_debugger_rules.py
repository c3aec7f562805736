"""SageMaker's built-in Debugger rules, for accounts that still have Debugger (scripts/aws/debugger.py):
the rule evaluator image of every region (issue 13 item 3) and the hook's save intervals per mode (item 6),
read by smdebug from the debughookconfig.json SageMaker writes into the training container."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from scripts import job_definition
from scripts.aws import debugger

# The accounts of the built-in rule evaluator images, as documented (not copied from the code under test):
# the SageMaker developer guide, "Amazon SageMaker Debugger Registry URLs for Built-in Rule Evaluators"
# (https://docs.aws.amazon.com/sagemaker/latest/dg/debuger-built-in-registry-ids.html: the 20 regions it lists),
# the per-region "Docker Registry Paths and Example Code" pages, section "Debugger (algorithm)"
# (https://docs.aws.amazon.com/sagemaker/latest/dg-ecr-paths/ecr-<region>.html) for the other four, and the
# SageMaker Python SDK's src/sagemaker/image_uri_config/debugger.json, which lists the same 24.
DOCUMENTED_ACCOUNTS = {
    "af-south-1": "314341159256",  # ecr-af-south-1 page, SDK
    "ap-east-1": "199566480951",
    "ap-northeast-1": "430734990657",
    "ap-northeast-2": "578805364391",
    "ap-northeast-3": "479947661362",  # ecr-ap-northeast-3 page, SDK (364406365360 is the DLC account)
    "ap-south-1": "904829902805",
    "ap-southeast-1": "972752614525",
    "ap-southeast-2": "184798709955",
    "ca-central-1": "519511493484",
    "cn-north-1": "618459771430",
    "cn-northwest-1": "658757709296",
    "eu-central-1": "482524230118",
    "eu-north-1": "314864569078",
    "eu-south-1": "563282790590",  # ecr-eu-south-1 page, SDK
    "eu-west-1": "929884845733",
    "eu-west-2": "250201462417",
    "eu-west-3": "447278800020",
    "me-south-1": "986000313247",
    "sa-east-1": "818342061345",
    "us-east-1": "503895931360",
    "us-east-2": "915447279597",
    "us-gov-west-1": "515509971035",  # ecr-us-gov-west-1 page, SDK
    "us-west-1": "685455198987",
    "us-west-2": "895741380848",
}


@pytest.mark.parametrize("region", sorted(DOCUMENTED_ACCOUNTS))
def test_rule_evaluator_image_is_the_documented_one(region):
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    expected = f"{DOCUMENTED_ACCOUNTS[region]}.dkr.ecr.{region}.{domain}/sagemaker-debugger-rules:latest"
    assert debugger.rule_evaluator_image(region) == expected


def test_the_table_has_the_documented_regions_only():
    assert debugger.RULE_EVALUATOR_ACCOUNTS == DOCUMENTED_ACCOUNTS
    with pytest.raises(debugger.DebuggerConfigError, match="no evaluator image in il-central-1"):
        debugger.rule_evaluator_image("il-central-1")


def test_the_table_agrees_with_the_pinned_sdk(sdk):
    """The SageMaker Python SDK (requirements-dev.txt) builds the same image URI in every region it knows."""
    from sagemaker import image_uris

    for region in DOCUMENTED_ACCOUNTS:
        assert image_uris.retrieve("debugger", region) == debugger.rule_evaluator_image(region), region


# --- item 6: the hook's train and eval intervals ---------------------------------------------------------------

def attached(definition, **changes):
    section = dataclasses.replace(definition.debugger, attach_sagemaker_rules=True, **changes)
    return dataclasses.replace(definition, debugger=section)


def written_by_sagemaker(debug_hook_config: dict) -> dict:
    """The debughookconfig.json SageMaker writes for a DebugHookConfig: the same fields, LocalPath defaulted."""
    return {"LocalPath": "/opt/ml/output/tensors", **debug_hook_config}


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 3)
        self.relu = torch.nn.ReLU()

    def forward(self, x):
        return torch.log_softmax(self.relu(self.layer(x)), dim=1)


def test_the_hook_saves_train_and_eval_steps_at_the_job_definitions_intervals(settings, tmp_path, monkeypatch):
    """Issue 13 item 6: with SageMaker's rules attached, the hook smdebug builds from the DebugHookConfig saves
    every train_interval training steps and every eval_interval evaluation steps (one `save_interval` used to
    set both to train_interval)."""
    from classifier.debugger import config as layout_config
    from classifier.debugger.hook import HookObserver
    from classifier.training import hyperparameters
    from classifier.training.loop import NLLWithLabelSmoothing

    definition = attached(job_definition.load(), train_interval=100, eval_interval=10)
    fields = debugger.training_job_fields(definition, settings, "job")
    base = tmp_path / "opt_ml"
    (base / "input" / "config").mkdir(parents=True)
    hook_config = written_by_sagemaker(fields["DebugHookConfig"])
    hook_config["LocalPath"] = str(tmp_path / "tensors")
    (base / "input" / "config" / "debughookconfig.json").write_text(json.dumps(hook_config))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(base))
    # the job's own hyperparameters say something else: the JSON names collections, so it sets the hook
    hook = HookObserver(hyperparameters.parse({"debugger": "true", "debugger_train_interval": "7",
                                               "debugger_eval_interval": "3"}),
                        layout_config.Layout(base / "output" / "data", base / "output" / "tensors"))
    hook.on_train_start(Tiny(), NLLWithLabelSmoothing(0.0), {"device": torch.device("cpu"), "classes": ["a", "b"]})
    try:
        intervals = hook.described["intervals"]
        assert hook.described["source"].endswith("debughookconfig.json")
        assert set(intervals) >= set(definition.debugger.collections)
        assert all((i["train"], i["eval"]) == (100, 10) for i in intervals.values()), intervals
    finally:
        hook.on_train_end({})

"""SageMaker's built-in Debugger/Profiler rules on a training job, for accounts that still have Debugger
(closed to new customers since 2026-07-30).

Off unless config/job.yaml says `debugger: {attach_sagemaker_rules: true, rules: [...]}`; the job's own
in-container rules (classifier/debugger) run either way and do not depend on this. Tuning jobs cannot
carry these fields (HyperParameterTrainingJobDefinition has none), so only `make train` attaches them.

Rule evaluator images: <account>.dkr.ecr.<region>.amazonaws.com[.cn]/sagemaker-debugger-rules:latest (see
RULE_EVALUATOR_ACCOUNTS for the sources; tests/aws/test_debugger_rules.py pins every region).
"""
from __future__ import annotations

from classifier.debugger import config as rule_table
from scripts.job_definition import JobDefinition

from .api_requests import ecr_registry
from .settings import Settings

RULE_REPOSITORY = "sagemaker-debugger-rules:latest"
# The account of the built-in rule evaluator image in each region. Sources: the SageMaker developer guide,
# "Amazon SageMaker Debugger Registry URLs for Built-in Rule Evaluators" (doc_source/debuger-built-in-registry-ids.md:
# 20 regions), its per-region "Docker Registry Paths and Example Code" pages (ecr-<region>.md, section
# "Debugger (algorithm)") for af-south-1, ap-northeast-3, eu-south-1 and us-gov-west-1, and the SageMaker Python
# SDK's src/sagemaker/image_uri_config/debugger.json (the same 24). Not the Deep Learning Containers accounts
# (ap-northeast-3's is 364406365360: a different registry).
RULE_EVALUATOR_ACCOUNTS = {
    "af-south-1": "314341159256", "ap-east-1": "199566480951", "ap-northeast-1": "430734990657",
    "ap-northeast-2": "578805364391", "ap-northeast-3": "479947661362", "ap-south-1": "904829902805",
    "ap-southeast-1": "972752614525", "ap-southeast-2": "184798709955", "ca-central-1": "519511493484",
    "cn-north-1": "618459771430", "cn-northwest-1": "658757709296", "eu-central-1": "482524230118",
    "eu-north-1": "314864569078", "eu-south-1": "563282790590", "eu-west-1": "929884845733",
    "eu-west-2": "250201462417", "eu-west-3": "447278800020", "me-south-1": "986000313247",
    "sa-east-1": "818342061345", "us-east-1": "503895931360", "us-east-2": "915447279597",
    "us-gov-west-1": "515509971035", "us-west-1": "685455198987", "us-west-2": "895741380848",
}
# Tensor collections each built-in rule reads (smdebug_rulesconfig's defaults); other rules use the
# collections the hook saves anyway.
RULE_COLLECTIONS = {
    "VanishingGradient": {"gradients": {}}, "LossNotDecreasing": {"losses": {}},
    "WeightUpdateRatio": {"weights": {}}, "DeadRelu": {"relu_output": {"include_regex": ".*relu_output"}},
    "PoorWeightInitialization": {"relu_input": {"include_regex": ".*relu_input"}},
}


class DebuggerConfigError(ValueError):
    pass


def _profiler_rule_names() -> set[str]:
    # The container's rule table (names and kinds as SageMaker's), and SageMaker's two report rules.
    return set(rule_table.PROFILER_RULES) | {"ProfilerReport", "OverallSystemUsage"}


def rule_evaluator_image(region: str) -> str:
    account = RULE_EVALUATOR_ACCOUNTS.get(region)
    if account is None:
        raise DebuggerConfigError(
            f"SageMaker Debugger's built-in rules have no evaluator image in {region} (regions: "
            f"{', '.join(sorted(RULE_EVALUATOR_ACCOUNTS))}); set debugger.attach_sagemaker_rules: false in "
            f"config/job.yaml (the job's own rules still run)")
    return f"{ecr_registry(account, region)}/{RULE_REPOSITORY}"


def save_intervals(section) -> dict[str, str]:
    """smdebug's per-mode collection parameters: the job definition's train_interval for TRAIN steps and
    eval_interval for EVAL steps (a plain `save_interval` would apply one interval to every mode)."""
    return {"train.save_interval": str(section.train_interval), "eval.save_interval": str(section.eval_interval)}


def attach_requested(definition: JobDefinition) -> bool:
    return definition.debugger.attach_sagemaker_rules


def training_job_fields(definition: JobDefinition, settings: Settings, job_name: str) -> dict:
    """DebugHookConfig, DebugRuleConfigurations, ProfilerConfig and ProfilerRuleConfigurations for the
    rules listed in job.yaml's debugger.rules; {} unless debugger.attach_sagemaker_rules is true. The hook
    saves at the job definition's train_interval and eval_interval, the profiler samples at its interval_ms."""
    section, profiler = definition.debugger, definition.profiler
    if not section.attach_sagemaker_rules or not section.rules:
        return {}
    image = rule_evaluator_image(settings.region)
    profiler_names = _profiler_rule_names()
    output = settings.s3_uri("debugger_prefix", job_name)

    def configuration(name: str) -> dict:
        params = {"rule_to_invoke": name}
        params.update({str(k): (str(v).lower() if isinstance(v, bool) else str(v))
                       for k, v in section.rule_parameters.get(name, {}).items()})
        return {"RuleConfigurationName": name, "RuleEvaluatorImage": image, "RuleParameters": params}

    tensor_rules = [r for r in section.rules if r not in profiler_names]
    profiler_rules = [r for r in section.rules if r in profiler_names]
    fields: dict = {}
    if tensor_rules:
        collections: dict[str, dict] = {name: {} for name in section.collections}
        for rule in tensor_rules:
            for name, params in RULE_COLLECTIONS.get(rule, {}).items():
                collections.setdefault(name, {}).update(params)
        fields["DebugHookConfig"] = {
            "S3OutputPath": output + "tensors/", "LocalPath": "/opt/ml/output/tensors",
            "CollectionConfigurations": [
                {"CollectionName": name, "CollectionParameters": {**params, **save_intervals(section)}}
                for name, params in collections.items()]}
        fields["DebugRuleConfigurations"] = [configuration(r) for r in tensor_rules]
    if profiler_rules:
        fields["ProfilerConfig"] = {"S3OutputPath": output + "profiler/",
                                    "ProfilingIntervalInMilliseconds": profiler.interval_ms}
        fields["ProfilerRuleConfigurations"] = [configuration(r) for r in profiler_rules]
    return fields

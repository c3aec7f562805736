"""make register / packages / approve: the SageMaker Model Registry for this project's models.

    python -m scripts.aws.registry register [--job <training job> | --tuning <tuning job> | --model-data s3://...]
                                            [--evaluation build/reports/evaluation/.../evaluation.json] [--approve]
    python -m scripts.aws.registry packages [--max 20]
    python -m scripts.aws.registry approve --version N [--reject] [--note "..."]

register makes a new version in the model package group of the settings (registry.model_package_group; the
group is made when missing): the serving image and the artifact, the model quality statistics (uploaded to
s3.registry_prefix and named in ModelMetrics) from the training job's test report and, with --evaluation, the
evaluation report of `make evaluate`, and, in CustomerMetadataProperties, the class count, the headline
metrics, where it came from and the hyperparameters. The class names, hyperparameters and metrics are read from
the artifact's own model_config.json (streamed from model.tar.gz), the test report from the job's
output.tar.gz. Status PendingManualApproval, or Approved with --approve. `make deploy PACKAGE=...` serves one.
"""
from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

import botocore.exceptions
import numpy as np

from classifier import artifact
from scripts import job_definition, orchestration

from . import api_requests
from .client import Aws, AwsError, error_code
from .common import base_parser, ecr_image, open_aws, run
from .deploy import add_model_source_arguments, check_model_source, describe_endpoint, model_source
from .model_packages import Package, dry_summary, resolve, versions
from .serving_record import package_version, read as read_record

MODEL_CONFIG = "model_config.json"  # the artifact's config (classifier.artifact.CONFIG_FILE)
TEST_REPORT = "test_report.json"    # the training job's output data (classifier.training.main)


# --- reading what training left --------------------------------------------------------------------------

def read_tar_json(aws: Aws, uri: str, member: str, dry: dict | None) -> dict | None:
    """A JSON file inside a .tar.gz in S3, streamed (stops at the member); None when the archive lacks it."""
    bucket, key = api_requests.split_s3_uri(uri)
    try:
        response = aws.call("s3", "get_object", Bucket=bucket, Key=key, dry={"Dry": dry})
    except botocore.exceptions.ClientError as error:
        if error_code(error) in ("NoSuchKey", "404"):
            return None
        raise
    if aws.dry_run:
        return response["Dry"]
    with tarfile.open(fileobj=response["Body"], mode="r|gz") as archive:
        for entry in archive:
            if entry.isfile() and Path(entry.name).name == member:
                return json.load(archive.extractfile(entry))
    return None


def output_archive(model_data: str) -> str:
    """.../<job>/output/model.tar.gz -> .../<job>/output/output.tar.gz (SageMaker's output data)."""
    return model_data.rsplit("/", 1)[0] + "/output.tar.gz"


def load_evaluation(path: str) -> dict:
    """evaluation.json of `make evaluate`, checked before any request."""
    file = Path(path)
    try:
        document = json.loads(file.read_text())
    except FileNotFoundError:
        raise ValueError(f"EVALUATION={path}: no such file (make evaluate writes evaluation.json next to its "
                         f"report)") from None
    except ValueError as error:
        raise ValueError(f"EVALUATION={path} is not JSON: {error}") from None
    missing = [k for k in ("class_names", "confusion_matrix", "accuracy", "images") if k not in document]
    if missing:
        raise ValueError(f"EVALUATION={path} lacks {', '.join(missing)}: not an evaluation.json of make evaluate")
    return document


# --- the statistics document -----------------------------------------------------------------------------

def classification_metrics(classes: list[str], confusion: list[list[int]]) -> dict:
    """SageMaker's model quality statistics (multiclass_classification_metrics, as Model Monitor writes them,
    which Studio shows) from a confusion matrix (rows: true class), with scikit-learn's weighted averages."""
    from sklearn import metrics as skm

    matrix = np.asarray(confusion, dtype=int)
    n = len(classes)
    pairs = [(t, p) for t in range(n) for p in range(n)]
    y_true = np.repeat([t for t, _ in pairs], [matrix[t, p] for t, p in pairs])
    y_pred = np.repeat([p for _, p in pairs], [matrix[t, p] for t, p in pairs])
    precision, recall, f1, _ = skm.precision_recall_fscore_support(y_true, y_pred, labels=list(range(n)),
                                                                   average="weighted", zero_division=0)
    return {"confusion_matrix": {classes[t]: {classes[p]: int(matrix[t, p]) for p in range(n)} for t in range(n)},
            "accuracy": {"value": float(skm.accuracy_score(y_true, y_pred))},
            "weighted_precision": {"value": float(precision)}, "weighted_recall": {"value": float(recall)},
            "weighted_f1": {"value": float(f1)}}


def statistics_document(config: dict, test_report: dict | None, evaluation: dict | None, source: str) -> dict:
    """The model quality statistics of a package: the evaluation report's when given (make evaluate on a data set
    of one's choice), else the test report's; both sets of figures kept, with the classes and hyperparameters."""
    document = {"version": 0.0, "source": source, "classes": config.get("classes", []),
                "architecture": config.get("architecture"), "hyperparameters": config.get("hyperparameters", {}),
                "training_metrics": config.get("metrics", {})}
    for name, report, images in (("test_report", test_report, None),
                                 ("evaluation", evaluation, (evaluation or {}).get("images"))):
        if not report:
            continue
        classes = report.get("class_names") or report.get("classes")
        figures = classification_metrics(classes, report["confusion_matrix"])
        document[name] = {"images": images or int(np.asarray(report["confusion_matrix"]).sum()), **figures}
    primary = "evaluation" if evaluation else "test_report" if test_report else None
    if primary:
        document["dataset"] = {"item_count": document[primary]["images"], "from": primary}
        document["multiclass_classification_metrics"] = {k: v for k, v in document[primary].items() if k != "images"}
    return document


def _fits(value: str) -> bool:
    return 0 < len(value) <= 256 and all(ch.isalnum() or ch in " _.:/=+-@" for ch in value)


def properties(document: dict) -> dict[str, str]:
    """CustomerMetadataProperties: the headline figures, then hyperparameters while they fit (at most 50 in all;
    a value SageMaker cannot hold there, such as a comma list, stays in the statistics document only)."""
    found = {"source": document["source"], "classes": str(len(document["classes"]))}
    if document.get("architecture"):
        found["architecture"] = str(document["architecture"])
    for name in ("test_report", "evaluation"):
        if name in document:
            prefix = "test" if name == "test_report" else "evaluation"
            found[f"{prefix}_accuracy"] = f"{document[name]['accuracy']['value']:.4f}"
            found[f"{prefix}_weighted_f1"] = f"{document[name]['weighted_f1']['value']:.4f}"
            found[f"{prefix}_images"] = str(document[name]["images"])
    for key, value in sorted(document["hyperparameters"].items()):
        if len(found) >= 50:
            break
        if _fits(str(value)) and _fits(f"hp:{key}"):
            found[f"hp:{key}"] = str(value)
    return {key: value for key, value in found.items() if _fits(key) and _fits(value)}


# --- the group and its versions -------------------------------------------------------------------------------

def ensure_group(aws: Aws) -> None:
    group = aws.settings.model_package_group
    try:
        aws.call("sagemaker", "describe_model_package_group", ModelPackageGroupName=group, dry={})
        if not aws.dry_run:
            return
        print(f"# CreateModelPackageGroup is sent only when {group} does not exist yet", file=aws.out)
    except botocore.exceptions.ClientError as error:
        if error_code(error) not in ("ValidationException", "ResourceNotFound"):
            raise
    aws.call("sagemaker", "create_model_package_group", **api_requests.model_package_group(aws.settings))
    if not aws.dry_run:
        print(f"created model package group {group}", file=sys.stderr)


def register(aws: Aws, definition: job_definition.JobDefinition, job: str, tuning: str, model_data: str,
             evaluation: dict | None, approve: bool) -> Package:
    settings = aws.settings
    model_data, source = model_source(aws, job, tuning, model_data, definition)
    config = read_tar_json(aws, model_data, MODEL_CONFIG, dry={
        "classes": ["<class names of model_config.json>"], "architecture": "<architecture>",
        "hyperparameters": {"<name>": "<value>"}, "metrics": {}})
    if config is None:
        raise AwsError(f"{model_data} holds no {MODEL_CONFIG}: not a model of this project's training job")
    problem = None if aws.dry_run else artifact.config_problem(config)
    if problem:  # what serving would refuse: stopped before the package exists
        raise AwsError(f"{model_data}: its {MODEL_CONFIG} {problem}")
    if evaluation and not aws.dry_run and evaluation["class_names"] != config.get("classes"):
        raise ValueError(f"the evaluation report's classes ({len(evaluation['class_names'])}) are not the model's "
                         f"({len(config.get('classes', []))}, in label order): it evaluated another model")
    test_report = (read_tar_json(aws, output_archive(model_data), TEST_REPORT, dry=None)
                   if source.startswith("training job") else None)
    document = statistics_document(config, test_report, evaluation, source)
    body = json.dumps(document, indent=2, sort_keys=True).encode()
    slug = (source.split()[-1] if source.startswith("training job")
            else "model-" + hashlib.sha256(model_data.encode()).hexdigest()[:12])
    metrics_uri = settings.s3_uri("registry_prefix", settings.model_package_group,
                                  f"{slug}-{orchestration.timestamp()}") + "model-quality.json"
    image = ecr_image(aws, settings.serving_repository)
    ensure_group(aws)
    aws.call("s3", "put_object", **api_requests.put_object(settings, metrics_uri, body, "application/json"))
    classes = document["classes"]
    description = (f"{document.get('architecture') or 'image classifier'}, {len(classes)} classes "
                   f"({', '.join(map(str, classes[:12]))}{', ...' if len(classes) > 12 else ''}), from {source}")
    request = api_requests.model_package(settings, image, model_data, description, metrics_uri,
                                         hashlib.sha256(body).hexdigest(), properties(document), approve)
    created = aws.call("sagemaker", "create_model_package", dry={"ModelPackageArn": dry_summary(
        aws, "<new version>", "")["ModelPackageArn"]}, **request)
    return Package(created["ModelPackageArn"], 0, request["ModelApprovalStatus"], image, model_data,
                   request["CustomerMetadataProperties"])


def deployed_package(aws: Aws) -> str:
    """The package ARN the settings' endpoint serves, as its tags record it ('' when none)."""
    endpoint = describe_endpoint(aws, aws.settings.endpoint_name, dry={})
    if not endpoint or not endpoint.get("EndpointArn"):
        return ""
    tags = aws.call("sagemaker", "list_tags", ResourceArn=endpoint["EndpointArn"], dry={"Tags": []})
    serving, _ = read_record(tags.get("Tags", []))
    return serving.package if serving else ""


def table(aws: Aws, limit: int) -> str:
    summaries = versions(aws, limit=limit)
    deployed = deployed_package(aws)
    rows = []
    for summary in summaries:
        described = aws.call("sagemaker", "describe_model_package", ModelPackageName=summary["ModelPackageArn"],
                             dry={**summary, "CustomerMetadataProperties": {}})
        package = Package.of({**summary, **described})
        figures = package.properties or {}
        rows.append([str(package.version), package.status, figures.get("test_accuracy", ""),
                     figures.get("evaluation_accuracy", ""), figures.get("source", ""),
                     "<- " + aws.settings.endpoint_name if package.arn == deployed else ""])
    if not rows:
        return (f"model package group {aws.settings.model_package_group}: no versions yet "
                f"(make register JOB=<training job>)")
    return orchestration.table(rows, ["version", "status", "test acc", "eval acc", "source", "deployed"])


def approve(aws: Aws, version: str, status: str, note: str) -> Package:
    package = resolve(aws, version)
    aws.call("sagemaker", "update_model_package", dry={"ModelPackageArn": package.arn},
             **api_requests.approve_model_package(package.arn, status, note))
    return package


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("command", choices=("register", "packages", "approve"))
    add_model_source_arguments(parser)  # register: what to register (default: the newest job)
    parser.add_argument("--evaluation", default="", help="register: evaluation.json of make evaluate")
    parser.add_argument("--approve", action="store_true", help="register: status Approved instead of pending")
    parser.add_argument("--max", type=int, default=20, help="packages: newest versions shown")
    parser.add_argument("--version", default="", help="approve: version number, latest-approved or ARN")
    parser.add_argument("--reject", action="store_true", help="approve: status Rejected instead")
    parser.add_argument("--note", default="", help="approve: why (ApprovalDescription)")
    args = parser.parse_args(argv)

    def go() -> int:
        if args.command == "register":
            definition = job_definition.load(args.job_definition)
            evaluation = load_evaluation(args.evaluation) if args.evaluation else None  # before any request
            check_model_source(args.job, args.tuning, args.model_data)
            aws = open_aws(args, "role_arn", "bucket")
            package = register(aws, definition, args.job, args.tuning, args.model_data, evaluation, args.approve)
            if not aws.dry_run:
                print(f"registered {package_version(package.arn)} ({package.status}): {package.model_data}\n"
                      + "".join(f"  {k} = {v}\n" for k, v in (package.properties or {}).items()
                                if not k.startswith("hp:"))
                      + ("next: make deploy PACKAGE=latest-approved" if package.status == "Approved" else
                         f"next: make approve VERSION={package_version(package.arn).rsplit('/', 1)[-1]}"))
            return 0
        if args.command == "approve" and not args.version.strip():
            raise ValueError("give the version: make approve VERSION=N (make packages lists them)")
        aws = open_aws(args)
        if args.command == "packages":
            text = table(aws, args.max)
            if not aws.dry_run:
                print(text)
            return 0
        status = "Rejected" if args.reject else "Approved"
        package = approve(aws, args.version, status, args.note)
        if not aws.dry_run:
            print(f"{package_version(package.arn)}: {package.status} -> {status}")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())

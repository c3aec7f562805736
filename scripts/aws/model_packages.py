"""The versions of the settings' model package group: listing them and finding one by what a user gives
(PACKAGE= or VERSION=: latest-approved, a version number, a package ARN)."""
from __future__ import annotations

from dataclasses import dataclass

from . import api_requests
from .client import Aws, AwsError
from .serving_record import package_version, placeholder

LATEST_APPROVED = "latest-approved"


@dataclass(frozen=True)
class Package:
    """A model package version as ListModelPackages / DescribeModelPackage describe it."""
    arn: str
    version: int
    status: str
    image: str = ""
    model_data: str = ""
    properties: dict | None = None

    @classmethod
    def of(cls, described: dict) -> "Package":
        containers = described.get("InferenceSpecification", {}).get("Containers") or [{}]
        return cls(described["ModelPackageArn"], int(described.get("ModelPackageVersion") or 0),
                   described.get("ModelApprovalStatus", ""), containers[0].get("Image", ""),
                   containers[0].get("ModelDataUrl", ""), described.get("CustomerMetadataProperties") or {})


def versions(aws: Aws, status: str = "", limit: int = 100, dry: list[dict] | None = None) -> list[dict]:
    """The group's package summaries, newest first (at most `limit`)."""
    params = {"ModelPackageGroupName": aws.settings.model_package_group, "SortBy": "CreationTime",
              "SortOrder": "Descending", "MaxResults": min(limit, 100)}
    if status:
        params["ModelApprovalStatus"] = status
    found = []
    for page in aws.paginate("sagemaker", "list_model_packages", dry={"ModelPackageSummaryList": dry or []},
                             **params):
        found += page.get("ModelPackageSummaryList", [])
        if len(found) >= limit:
            break
    return found[:limit]


def dry_summary(aws: Aws, version: str, status: str) -> dict:
    group = aws.settings.model_package_group
    return {"ModelPackageArn": api_requests.sagemaker_arn(aws.settings, "model-package", f"{group}/{version}"),
            "ModelPackageVersion": 0, "ModelApprovalStatus": status}


def resolve(aws: Aws, spec: str) -> Package:
    """PACKAGE=latest-approved | <version number> | <package ARN>, described (image, artifact, status)."""
    group = aws.settings.model_package_group
    spec = spec.strip()
    if spec.startswith("arn:"):
        arn = spec
    elif spec == LATEST_APPROVED:
        found = versions(aws, "Approved", 1, dry=[dry_summary(aws, "<latest approved>", "Approved")])
        if not found:
            raise AwsError(f"model package group {group} has no approved version: `make packages` lists them, "
                           f"`make approve VERSION=N` approves one")
        arn = found[0]["ModelPackageArn"]
    elif spec.isdigit():
        dry = dry_summary(aws, spec, "Approved") | {"ModelPackageVersion": int(spec)}
        listed = versions(aws, limit=1000, dry=[dry])
        match = [s for s in listed if int(s.get("ModelPackageVersion") or 0) == int(spec)]
        if not match:
            known = ", ".join(str(s.get("ModelPackageVersion")) for s in listed) or "none"
            raise AwsError(f"model package group {group} has no version {spec} (versions: {known})")
        arn = match[0]["ModelPackageArn"]
    else:
        raise ValueError(f"PACKAGE={spec!r}: give {LATEST_APPROVED}, a version number of model package group {group}, "
                         f"or a model package ARN")
    served = placeholder(aws.settings, package_version(arn))
    described = aws.call("sagemaker", "describe_model_package", ModelPackageName=arn, dry={
        "ModelPackageArn": arn, "ModelPackageVersion": int(spec) if spec.isdigit() else 0,
        "ModelApprovalStatus": "Approved", "InferenceSpecification": {"Containers": [{
            "Image": served.image, "ModelDataUrl": served.model_data}]}})
    return Package.of(described)

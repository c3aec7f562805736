"""make bootstrap: what a new account needs before the first `make push`, and nothing else.

    python -m scripts.aws.bootstrap [--dry-run]

1. The execution role (aws.role_arn): SageMaker's trust for this account only, and the least-privilege policy
   `make iam-policy` derives (iam_policy.py) as its inline policy. A role that exists keeps its trust; its
   inline policy of that name is replaced by the current one (run again after a change of settings).
2. The bucket (s3.bucket), when it does not exist: in aws.region, default encryption with kms.key_id (else
   SSE-S3), public access blocked, the lifecycle rule of the settings (shared features and checkpoints expire,
   unfinished uploads go), the settings' tags. An existing bucket is checked (its region, encryption, public
   access) and left as it is: what it lacks is said, with the command that adds it.
3. The two ECR repositories, as `make push` makes them (private, scanned, encrypted with the key).

Everything is tagged with the settings' tags; `make teardown ALL=1` removes it again.
"""
from __future__ import annotations

import json
import sys

import botocore.exceptions

from . import api_requests, iam_policy, lockdown
from .client import Aws, AwsError, error_code
from .common import base_parser, open_aws, run
from .push_images import ensure_repository


def caller_account(aws: Aws) -> str:
    """The caller's account (STS, no permission needed), which must be the role's."""
    account = aws.call("sts", "get_caller_identity", dry={"Account": aws.settings.account_id or "<account-id>"})
    if not aws.dry_run and aws.settings.account_id and account["Account"] != aws.settings.account_id:
        raise AwsError(f"the credentials in use are of account {account['Account']}, the execution role "
                       f"(aws.role_arn) of {aws.settings.account_id}: log in to that account, or set "
                       f"SAGEMAKER_ROLE_ARN= to a role of this one")
    return account["Account"]


def ensure_role(aws: Aws, policy: dict, trust: dict) -> str:
    name = api_requests.role_name_and_path(aws.settings.role_arn)[0]
    try:
        found = aws.call("iam", "get_role", RoleName=name, dry={})
    except botocore.exceptions.ClientError as error:
        if error_code(error) != "NoSuchEntity":
            raise
        found = {}
    if found and not aws.dry_run:
        done = f"execution role {name}: exists; its policy {api_requests.ROLE_POLICY_NAME} set to the current one"
        if "sagemaker.amazonaws.com" not in json.dumps(found.get("Role", {}).get("AssumeRolePolicyDocument", "")):
            done += " (note: its trust policy does not name sagemaker.amazonaws.com: SageMaker cannot use it)"
    else:
        if aws.dry_run:
            print(f"# CreateRole is sent only when {name} does not exist yet", file=aws.out)
        aws.call("iam", "create_role", **api_requests.create_role(aws.settings, trust))
        done = f"execution role {name}: created, trusted by SageMaker for this account, with its policy"
    aws.call("iam", "put_role_policy", **api_requests.put_role_policy(aws.settings, policy))
    return done


def bucket_region(aws: Aws) -> str | None:
    """The bucket's region, or None when there is no bucket by that name (a dry run: none yet)."""
    try:
        found = aws.call("s3", "get_bucket_location", Bucket=aws.settings.bucket, dry=None)
    except botocore.exceptions.ClientError as error:
        if error_code(error) == "NoSuchBucket":
            return None
        if error_code(error) in ("AccessDenied", "403"):
            raise AwsError(f"bucket {aws.settings.bucket} exists and this account cannot read it (bucket names are "
                           f"global): choose another s3.bucket / S3_BUCKET=") from None
        raise
    if aws.dry_run:
        return None
    location = found.get("LocationConstraint") or "us-east-1"
    return {"EU": "eu-west-1"}.get(location, location)


def create_bucket(aws: Aws) -> str:
    settings = aws.settings
    aws.call("s3", "create_bucket", **api_requests.create_bucket(settings))
    aws.call("s3", "put_bucket_encryption", Bucket=settings.bucket,
             ServerSideEncryptionConfiguration=lockdown.bucket_encryption(settings))
    aws.call("s3", "put_public_access_block", Bucket=settings.bucket,
             PublicAccessBlockConfiguration=api_requests.PUBLIC_ACCESS_BLOCK)
    aws.call("s3", "put_bucket_lifecycle_configuration", **api_requests.bucket_lifecycle(settings))
    if settings.tag_list:
        aws.call("s3", "put_bucket_tagging", Bucket=settings.bucket, Tagging={"TagSet": settings.tag_list})
    key = f"SSE-KMS with {settings.kms_key}" if settings.kms_key else "SSE-S3"
    return f"bucket {settings.bucket}: created in {settings.region}, {key}, public access blocked, lifecycle rule"


def check_bucket(aws: Aws, region: str | None) -> list[str]:
    """What an existing bucket lacks of what make bootstrap would give it (nothing is changed)."""
    settings, notes = aws.settings, []
    if region and region != settings.region:
        raise AwsError(f"bucket {settings.bucket} is in {region}, aws.region is {settings.region}: SageMaker reads "
                       f"and writes a bucket of its own region; set AWS_REGION={region} or another S3_BUCKET=")
    try:
        rules = aws.call("s3", "get_bucket_encryption", Bucket=settings.bucket).get(
            "ServerSideEncryptionConfiguration", {}).get("Rules", [])
    except botocore.exceptions.ClientError as error:
        if error_code(error) != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rules = []
    keys = [rule.get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID") for rule in rules]
    if settings.kms_key and settings.kms_key not in keys:
        notes.append(f"its default encryption is not kms.key_id: what SageMaker writes without a key of its own "
                     f"(checkpoints, Debugger output) is not encrypted with it. `aws s3api put-bucket-encryption "
                     f"--bucket {settings.bucket} --server-side-encryption-configuration "
                     f"'{json.dumps(lockdown.bucket_encryption(settings))}'` sets it")
    try:
        block = aws.call("s3", "get_public_access_block", Bucket=settings.bucket).get(
            "PublicAccessBlockConfiguration", {})
    except botocore.exceptions.ClientError as error:
        if error_code(error) != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    if not all(block.get(name) for name in api_requests.PUBLIC_ACCESS_BLOCK):
        notes.append(f"its public access is not blocked: `aws s3api put-public-access-block --bucket "
                     f"{settings.bucket} --public-access-block-configuration "
                     f"'{json.dumps(api_requests.PUBLIC_ACCESS_BLOCK)}'`")
    return notes


def bootstrap(aws: Aws, policy: dict, trust: dict) -> list[str]:
    """Creates what is missing; returns one line per resource (and the notes on an existing bucket)."""
    caller_account(aws)
    done = [ensure_role(aws, policy, trust)]
    region = bucket_region(aws)
    if region is None:
        if aws.dry_run:
            print(f"# the bucket's requests below: CreateBucket and its settings when {aws.settings.bucket} does not "
                  f"exist; an existing one is only checked (GetBucketEncryption, GetPublicAccessBlock)", file=aws.out)
        done.append(create_bucket(aws))
    if region is not None or aws.dry_run:
        notes = check_bucket(aws, region)
        done.append(f"bucket {aws.settings.bucket}: exists, left as it is"
                    + "".join(f"\n  note: {note}" for note in notes))
    for repository in (aws.settings.training_repository, aws.settings.serving_repository):
        ensure_repository(aws, repository)
        done.append(f"ECR repository {repository}: {'encrypted with the key' if aws.settings.kms_key else 'ready'}")
    return done


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args, "role_arn", "bucket")
        policy, trust = iam_policy.execution_role(iam_policy.settings_path(args), aws.settings)
        done = bootstrap(aws, policy, trust)
        if not aws.dry_run:
            print("\n".join(done) + "\nnext: `make iam-policy` writes the policy of whoever runs make (attach "
                  "caller-policy.json), then `make build push`, `make upload-data`")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())

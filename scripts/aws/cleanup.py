"""make cleanup: delete the endpoint, its endpoint config and model (and older ones `make deploy` left).

    python -m scripts.aws.cleanup [--dry-run]

Also removes the endpoint's auto scaling target. Leftovers are models and configs named
<endpoint>-<yyyymmdd-hhmmss> (what deploy creates) that no endpoint uses any more. Data in S3, images in
ECR and finished jobs are kept.
"""
from __future__ import annotations

import sys

from .client import Aws
from .common import base_parser, open_aws, run
from .deploy import (
    deregister_scalable_target,
    describe_endpoint,
    endpoint_models,
    leftovers,
    scalable_target_registered,
)


def cleanup(aws: Aws) -> list[str]:
    """Deletes; returns what was deleted, as 'kind name'."""
    endpoint = aws.settings.endpoint_name
    deleted = []
    state = describe_endpoint(aws, endpoint, dry={"EndpointConfigName": f"<config of {endpoint}>"})
    configs, models = [], []
    if state:
        if scalable_target_registered(aws, endpoint):
            deregister_scalable_target(aws, endpoint)
            deleted.append(f"scalable target {endpoint}")
        config = state.get("EndpointConfigName")
        models += endpoint_models(aws, config)
        aws.call("sagemaker", "delete_endpoint", EndpointName=endpoint)
        deleted.append(f"endpoint {endpoint}")
        configs.append(config)
    else:
        print(f"endpoint {endpoint} not found; looking for models and configs it left behind")
    for name in leftovers(aws, endpoint, "config"):
        if name not in configs:
            models += endpoint_models(aws, name)
            configs.append(name)
    models += [m for m in leftovers(aws, endpoint, "model") if m not in models]
    for config in configs:  # a config may go while its endpoint is still being deleted
        aws.call("sagemaker", "delete_endpoint_config", EndpointConfigName=config)
        deleted.append(f"endpoint config {config}")
    for model in dict.fromkeys(models):
        aws.call("sagemaker", "delete_model", ModelName=model)
        deleted.append(f"model {model}")
    return deleted


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args)
        deleted = cleanup(aws)
        if not aws.dry_run:
            print("\n".join(f"deleted {item}" for item in deleted) if deleted else "nothing to delete")
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())

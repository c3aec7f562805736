"""make rollback: the endpoint goes back to the model it served before its last deploy, without downtime.

    python -m scripts.aws.rollback [--force] [--no-wait] [--dry-run]

The live endpoint config's tags (serving_record.py) say what the endpoint served before it: a registry package or
a model.tar.gz with its serving image. A new model and config are made from that record and the endpoint is
updated to them as `make deploy` updates it (blue/green, the settings' traffic shifting and auto rollback alarms),
so the old config need not exist any more. The new config records what it replaces: a second rollback returns
to where the first one started. A package that is no longer Approved is refused unless --force.
"""
from __future__ import annotations

import sys

from scripts import endpoint_cost

from . import api_requests, model_packages, serving_record
from .client import Aws, AwsError
from .common import base_parser, open_aws, run
from .deploy import deploy, describe_config, describe_endpoint, tags_of


def previous_model(aws: Aws, force: bool) -> tuple[serving_record.Served, str]:
    """(what the endpoint served before, the live config); a one-line error when there is nothing to go back to.
    Only reads: nothing is changed before the answer is known. A dry run shows an endpoint that has one."""
    endpoint = aws.settings.endpoint_name
    state = describe_endpoint(aws, endpoint, dry={"EndpointStatus": "InService",
                                                  "EndpointConfigName": f"<config of {endpoint}>",
                                                  "EndpointArn": api_requests.sagemaker_arn(aws.settings, "endpoint",
                                                                                            endpoint)})
    if not state:
        raise AwsError(f"endpoint {endpoint} does not exist: nothing to roll back (make deploy creates it)")
    if state.get("EndpointStatus") != "InService":
        raise AwsError(f"endpoint {endpoint} is {state.get('EndpointStatus')}: roll back once it is InService")
    live = state["EndpointConfigName"]
    placeholder = serving_record.placeholder(aws.settings, "the model served before")
    arn = api_requests.sagemaker_arn(aws.settings, "endpoint-config", live)
    config = describe_config(aws, live, dry={"EndpointConfigName": live, "EndpointConfigArn": arn})
    dry_tags = serving_record.record(serving_record.placeholder(aws.settings, live), placeholder)
    _, previous = serving_record.read(tags_of(aws, (config or {}).get("EndpointConfigArn"), dry=dry_tags))
    if previous is None:
        raise AwsError(f"endpoint {endpoint} has nothing to go back to: its config {live} records no earlier model "
                       f"(it was the first deploy, or made before make deploy recorded one); deploy a model with "
                       f"make deploy PACKAGE=<version> | JOB=<training job> instead")
    if previous.package:
        package = model_packages.resolve(aws, previous.package)
        if package.status != "Approved" and not force:
            raise AwsError(f"the previous model is model package {serving_record.package_version(package.arn)}, now "
                           f"{package.status}: FORCE=1 rolls back to it anyway")
    return previous, live


def main(argv=None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="roll back to a package that is no longer Approved")
    parser.add_argument("--no-wait", action="store_true", help="start the update and return (make deploy-finish)")
    parser.add_argument("--latency-ms", type=float, default=endpoint_cost.MEASURED_LATENCY_MS)
    args = parser.parse_args(argv)

    def go() -> int:
        aws = open_aws(args, "role_arn")
        previous, live = previous_model(aws, args.force)
        print(f"rolling {aws.settings.endpoint_name} back from {live} to {previous.describe()}", file=sys.stderr)
        result = deploy(aws, previous, wait=not args.no_wait, latency_ms=args.latency_ms,
                        assume_exists=aws.dry_run)
        if not aws.dry_run:
            print(f"endpoint {result['endpoint']} serves {previous.describe()} again"
                  + (" (update started; make deploy-finish waits)" if args.no_wait else ", InService"))
        return 0

    return run(go)


if __name__ == "__main__":
    sys.exit(main())

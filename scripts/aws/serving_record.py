"""What an endpoint serves, written down as tags: on each endpoint config `make deploy` makes (with what it
replaces) and on the endpoint itself.

A config's tags are written in the request that creates it, so they are right whatever happens to the update;
they say what the config serves (`serving:*`) and what the endpoint served before it (`previous:*`). That is
all `make rollback` needs to rebuild the previous model and config, even after the old config was deleted.
The endpoint's own tags repeat the `serving:*` record of the config it runs on (make packages reads them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from . import api_requests
from .client import AwsError
from .settings import Settings

KEYS = {"package": "package", "model_data": "model-data", "image": "image"}
_TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{1,256}")  # SageMaker's tag value pattern (letters, digits, _.:/=+-@)


@dataclass(frozen=True)
class Served:
    """A model an endpoint serves: the serving image and the artifact, and the registry package they came
    from (its ARN) when it was deployed from the registry."""
    image: str
    model_data: str
    package: str = ""

    def describe(self) -> str:
        return (f"model package {package_version(self.package)} ({self.model_data})" if self.package
                else self.model_data)

    def tags(self, role: str) -> list[dict[str, str]]:
        tags = []
        for attr, key in KEYS.items():
            value = getattr(self, attr)
            if not value:  # written empty, so that AddTags on the endpoint replaces an earlier deploy's package
                tags.append({"Key": f"{role}:{key}", "Value": ""})
                continue
            if not _TAG_VALUE.fullmatch(value) and "<" not in value:  # "<...>": a dry run's placeholder
                raise AwsError(f"cannot record {key} {value!r} in a tag (up to 256 letters, digits and _.:/=+-@): "
                               f"rename it, or the endpoint could not be rolled back to it")
            tags.append({"Key": f"{role}:{key}", "Value": value})
        return tags


def placeholder(settings: Settings, whose: str) -> Served:
    """What a dry run assumes `whose` (an endpoint config, a package) serves: the serving image of the settings'
    repository and an artifact under the output prefix, placeholders only where the value is unknown."""
    image = api_requests.image_uri(settings.account_id or "<account-id>", settings.region,
                                   settings.serving_repository, "<tag>")
    return Served(image, settings.s3_uri("output_prefix", f"<training job of {whose}>", "output") + "model.tar.gz")


def package_version(arn: str) -> str:
    """arn:...:model-package/<group>/<version> -> '<group>/<version>'."""
    return arn.split(":model-package/", 1)[-1]


def record(serving: Served, previous: Served | None) -> list[dict[str, str]]:
    """The tags of a new endpoint config."""
    return serving.tags("serving") + (previous.tags("previous") if previous else [])


def read(tags: list[dict]) -> tuple[Served | None, Served | None]:
    """(serving, previous) from a resource's tags; a later tag of the same key wins (as after AddTags)."""
    values = {tag["Key"]: tag["Value"] for tag in tags}

    def served(role: str) -> Served | None:
        found = {attr: values.get(f"{role}:{key}", "") for attr, key in KEYS.items()}
        return Served(**found) if found["image"] and found["model_data"] else None

    return served("serving"), served("previous")

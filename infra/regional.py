"""Values that differ per AWS region, resolved for the region a stack deploys to, not the one cdk.json names.

A stage with `account: null` is environment-agnostic: CloudFormation deploys it to the CLI profile's region, so
nothing regional may be baked at synth. Each stack gets one CfnMapping keyed by region, read with
`Fn::FindInMap` at `AWS::Region` (CDK resolves it at synth when the stack's region is concrete); a region
missing from the map fails the deploy instead of deploying another region's ARN.

- SageMaker scikit-learn container: the ECR registry account per region from the SageMaker SDK's own table
  (`sagemaker.core.image_uris`, offline), the repository and tag are the same everywhere.
- AWS SDK for pandas layer: account and version differ per region. The ARNs below are the project's pinned
  release (3.12.1, Python 3.11, x86_64) as aws/aws-sdk-pandas publishes them in docs/source/layers.rst
  (commit 2634df1b, 2025-06-26); us-east-1 is version 22, ap-east-1 24, other opt-in regions another account.
- Powertools for AWS Lambda (Python) v3 layer: one account (017000801446) and one version number in each of
  the regions its docs list (docs/includes/_layer_homepage_x86.md of aws-powertools/powertools-lambda-python,
  commit a18898fe), so the ARN is the stack's partition and region around the pinned version; China and
  GovCloud are not among them.
"""

from __future__ import annotations

from functools import cache

from aws_cdk import CfnMapping, Fn, Stack
from constructs import Construct

SKLEARN_FRAMEWORK_VERSION = "1.9-0"
SKLEARN_REPOSITORY = "sagemaker-scikit-learn"
POWERTOOLS_LAYER = "arn:{partition}:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18"
PANDAS_LAYERS: dict[str, str] = {
    "af-south-1": "arn:aws:lambda:af-south-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-northeast-1": "arn:aws:lambda:ap-northeast-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-northeast-2": "arn:aws:lambda:ap-northeast-2:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-northeast-3": "arn:aws:lambda:ap-northeast-3:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-south-1": "arn:aws:lambda:ap-south-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-southeast-1": "arn:aws:lambda:ap-southeast-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-southeast-2": "arn:aws:lambda:ap-southeast-2:336392948345:layer:AWSSDKPandas-Python311:22",
    "ca-central-1": "arn:aws:lambda:ca-central-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "eu-central-1": "arn:aws:lambda:eu-central-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "eu-north-1": "arn:aws:lambda:eu-north-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "eu-west-1": "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "eu-west-2": "arn:aws:lambda:eu-west-2:336392948345:layer:AWSSDKPandas-Python311:22",
    "eu-west-3": "arn:aws:lambda:eu-west-3:336392948345:layer:AWSSDKPandas-Python311:22",
    "sa-east-1": "arn:aws:lambda:sa-east-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "us-east-1": "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "us-east-2": "arn:aws:lambda:us-east-2:336392948345:layer:AWSSDKPandas-Python311:22",
    "us-west-1": "arn:aws:lambda:us-west-1:336392948345:layer:AWSSDKPandas-Python311:22",
    "us-west-2": "arn:aws:lambda:us-west-2:336392948345:layer:AWSSDKPandas-Python311:22",
    "ap-east-1": "arn:aws:lambda:ap-east-1:839552336658:layer:AWSSDKPandas-Python311:24",
    "ap-south-2": "arn:aws:lambda:ap-south-2:246107603503:layer:AWSSDKPandas-Python311:23",
    "ap-southeast-3": "arn:aws:lambda:ap-southeast-3:258944054355:layer:AWSSDKPandas-Python311:24",
    "ap-southeast-4": "arn:aws:lambda:ap-southeast-4:945386623051:layer:AWSSDKPandas-Python311:23",
    "eu-central-2": "arn:aws:lambda:eu-central-2:956415814219:layer:AWSSDKPandas-Python311:23",
    "eu-south-1": "arn:aws:lambda:eu-south-1:774444163449:layer:AWSSDKPandas-Python311:24",
    "eu-south-2": "arn:aws:lambda:eu-south-2:982086096842:layer:AWSSDKPandas-Python311:23",
    "il-central-1": "arn:aws:lambda:il-central-1:263840725265:layer:AWSSDKPandas-Python311:22",
    "me-central-1": "arn:aws:lambda:me-central-1:593833071574:layer:AWSSDKPandas-Python311:22",
    "me-south-1": "arn:aws:lambda:me-south-1:938046470361:layer:AWSSDKPandas-Python311:24",
    "cn-north-1": "arn:aws-cn:lambda:cn-north-1:406640652441:layer:AWSSDKPandas-Python311:19",
    "cn-northwest-1": "arn:aws-cn:lambda:cn-northwest-1:406640652441:layer:AWSSDKPandas-Python311:18",
}
POWERTOOLS_REGIONS = frozenset(
    [
        "af-south-1",
        "ap-east-1",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    ]
)
_MAP_ID = "RegionalValues"


@cache
def sklearn_registries() -> dict[str, str]:
    """Region -> ECR registry account of the SageMaker scikit-learn container (the SDK's offline table)."""
    from sagemaker.core import image_uris

    config = image_uris.config_for_framework("sklearn")["inference"]["versions"][SKLEARN_FRAMEWORK_VERSION]
    return dict(config["registries"])


@cache
def sklearn_image_tag(instance_type: str) -> str:
    """The container tag for an instance type (cpu or gpu build); the same in every region."""
    from sagemaker.core import image_uris

    uri = image_uris.retrieve(
        framework="sklearn", region="us-east-1", version=SKLEARN_FRAMEWORK_VERSION, instance_type=instance_type
    )
    return str(uri).rsplit(":", 1)[1]


def supported_regions() -> list[str]:
    """Regions where the container and both layers exist: the stacks deploy nowhere else."""
    return sorted(set(sklearn_registries()) & set(PANDAS_LAYERS) & POWERTOOLS_REGIONS)


class RegionalValues(Construct):
    """The stack's region map and the values read from it; one per stack (`RegionalValues.of(stack)`)."""

    @classmethod
    def of(cls, scope: Construct) -> RegionalValues:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(_MAP_ID)
        return existing if isinstance(existing, RegionalValues) else cls(stack, _MAP_ID)

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        registries = sklearn_registries()
        self._map = CfnMapping(
            self,
            "Map",
            mapping={
                region: {"SklearnRegistry": registries[region], "PandasLayer": PANDAS_LAYERS[region]}
                for region in supported_regions()
            },
            lazy=True,
        )
        self._stack = Stack.of(self)

    def _find(self, key: str) -> str:
        return str(self._map.find_in_map(self._stack.region, key))

    @property
    def sklearn_registry(self) -> str:
        return self._find("SklearnRegistry")

    def sklearn_image_uri(self, instance_type: str) -> str:
        """`<registry>.dkr.ecr.<region>.<url suffix>/sagemaker-scikit-learn:<tag>` for the stack's region."""
        return Fn.join(
            "",
            [
                self.sklearn_registry,
                ".dkr.ecr.",
                self._stack.region,
                ".",
                self._stack.url_suffix,
                f"/{SKLEARN_REPOSITORY}:{sklearn_image_tag(instance_type)}",
            ],
        )

    @property
    def sklearn_repository_arn(self) -> str:
        return self._stack.format_arn(
            service="ecr", account=self.sklearn_registry, resource="repository", resource_name=SKLEARN_REPOSITORY
        )

    @property
    def pandas_layer_arn(self) -> str:
        return self._find("PandasLayer")

    @property
    def powertools_layer_arn(self) -> str:
        return POWERTOOLS_LAYER.format(partition=self._stack.partition, region=self._stack.region)

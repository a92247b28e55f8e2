"""Package sets stand for managed layers by ARN, whatever the region or the publishing account's copy."""

from __future__ import annotations

import pytest

from mlloop.localcloud.execution import envs


def test_a_layer_is_known_by_name_and_version_in_every_region() -> None:
    east = envs.layer_set("arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:22")
    west = envs.layer_set("arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python311:22")

    assert east is not None and east == west
    assert east.requirements.name == "layer-AWSSDKPandas-Python311-22.txt"


def test_another_version_of_a_known_layer_is_unknown() -> None:
    assert envs.layer_set("arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:23") is None


def test_a_function_arn_is_not_a_layer() -> None:
    with pytest.raises(ValueError, match="not a layer version ARN"):
        envs.layer_key("arn:aws:lambda:us-east-1:123456789012:function:f")


def test_the_layer_builds_remove_what_the_runtime_provides() -> None:
    powertools = envs.layer_set(
        "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18"
    )

    assert powertools is not None
    assert set(powertools.removed_packages()) == {"boto3", "botocore", "s3transfer"}

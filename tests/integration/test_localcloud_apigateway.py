"""A deployed REST API answers real HTTP requests through its Lambda proxy integration.

Given a REST API deployed from a template, when an HTTP client calls the local URL, then the handler
receives an API Gateway proxy event (v1) and its answer becomes the HTTP response.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import ROLE, python_function, unique_stage, write_assembly

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

HANDLER = """
    import json

    def handler(event, context):
        if event["pathParameters"] and event["pathParameters"].get("id") == "boom":
            raise RuntimeError("handler crashed")
        answer = {
            "resource": event["resource"],
            "method": event["httpMethod"],
            "path": event["path"],
            "pathParameters": event["pathParameters"],
            "query": event["queryStringParameters"],
            "body": event["body"],
            "stage": event["requestContext"]["stage"],
        }
        return {"statusCode": 201 if event["httpMethod"] == "POST" else 200,
                "headers": {"X-Model-Version": "7"}, "body": json.dumps(answer)}
"""


def _integration() -> dict[str, Any]:
    uri = {
        "Fn::Join": [
            "",
            [
                "arn:aws:apigateway:",
                {"Ref": "AWS::Region"},
                ":lambda:path/2015-03-31/functions/",
                {"Fn::GetAtt": ["Api", "Arn"]},
                "/invocations",
            ],
        ]
    }
    return {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST", "Uri": uri}


def _method(resource: dict[str, Any], http_method: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::Method",
        "Properties": {
            "RestApiId": {"Ref": "RestApi"},
            "ResourceId": resource,
            "HttpMethod": http_method,
            "AuthorizationType": "AWS_IAM",
            "Integration": _integration(),
        },
    }


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    stage = unique_stage()
    resources = {
        "Role": ROLE,
        "Api": python_function(HANDLER),
        "RestApi": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": f"{stage}-api"}},
        "Items": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": {"Ref": "RestApi"},
                "ParentId": {"Fn::GetAtt": ["RestApi", "RootResourceId"]},
                "PathPart": "items",
            },
        },
        "Item": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {"RestApiId": {"Ref": "RestApi"}, "ParentId": {"Ref": "Items"}, "PathPart": "{id}"},
        },
        "GetItem": _method({"Ref": "Item"}, "GET"),
        "PostItems": _method({"Ref": "Items"}, "POST"),
        "Release": {
            "Type": "AWS::ApiGateway::Deployment",
            "DependsOn": ["GetItem", "PostItems"],
            "Properties": {"RestApiId": {"Ref": "RestApi"}},
        },
        "Prod": {
            "Type": "AWS::ApiGateway::Stage",
            "Properties": {"RestApiId": {"Ref": "RestApi"}, "DeploymentId": {"Ref": "Release"}, "StageName": "prod"},
        },
    }
    out = write_assembly(tmp_path_factory.mktemp("api"), {f"mlloop-{stage}-api": {"Resources": resources}})
    return local_cloud.deploy(stage, cdk_out=out)


def _request(url: str, *, method: str = "GET", body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture(scope="module")
def base_url(local_cloud: LocalCloud, deployed: Deployment) -> str:
    return local_cloud.api_url(deployed.physical_id("RestApi"), "prod")


def test_get_reaches_the_handler_with_path_and_query_parameters(base_url: str) -> None:
    status, headers, body = _request(f"{base_url}/items/42?verbose=yes")

    answer = json.loads(body)
    assert status == 200
    assert headers["X-Model-Version"] == "7"
    assert answer == {
        "resource": "/items/{id}",
        "method": "GET",
        "path": "/items/42",
        "pathParameters": {"id": "42"},
        "query": {"verbose": "yes"},
        "body": None,
        "stage": "prod",
    }


def test_post_body_reaches_the_handler(base_url: str) -> None:
    status, _, body = _request(f"{base_url}/items", method="POST", body=b'{"tenure": 3}')

    assert status == 201
    assert json.loads(json.loads(body)["body"]) == {"tenure": 3}


def test_unknown_routes_are_refused_like_api_gateway(base_url: str) -> None:
    status, _, body = _request(f"{base_url}/nowhere")

    assert status == 403
    assert json.loads(body) == {"message": "Missing Authentication Token"}


def test_a_crashing_handler_is_a_502(base_url: str) -> None:
    status, _, body = _request(f"{base_url}/items/boom")

    assert status == 502
    assert json.loads(body) == {"message": "Internal server error"}

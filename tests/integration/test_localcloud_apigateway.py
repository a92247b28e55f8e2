"""A deployed REST API answers real HTTP requests through its Lambda proxy integration.

Given a REST API deployed from a template, when an HTTP client calls the local URL, then the handler
receives an API Gateway proxy event (v1) and its answer becomes the HTTP response.
"""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from typing import Any
from unittest import mock

import pytest

from mlloop.localcloud import LocalCloud, identity
from mlloop.localcloud.authz.sigv4 import signed_headers
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import ROLE, python_function, signed_request, unique_stage, write_assembly

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
            "caller": event["requestContext"]["identity"]["userArn"],
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
        # API Gateway invokes the integration as apigateway.amazonaws.com: the function's policy allows it.
        "ApiInvokedByGateway": {
            "Type": "AWS::Lambda::Permission",
            "Properties": {
                "FunctionName": {"Fn::GetAtt": ["Api", "Arn"]},
                "Action": "lambda:InvokeFunction",
                "Principal": "apigateway.amazonaws.com",
            },
        },
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
    request = signed_request(url, method=method, body=body)
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
        "caller": "arn:aws:iam::123456789012:root",
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


def _signed(url: str, *, method: str = "GET", body: bytes | None = None, **keys: str) -> urllib.request.Request:
    credentials = {
        "access_key_id": identity.ADMIN_ACCESS_KEY_ID,
        "secret_access_key": identity.ADMIN_SECRET_ACCESS_KEY,
    } | keys
    headers = signed_headers(method, url, body, region="us-east-1", **credentials)
    return urllib.request.Request(url, data=body, method=method, headers=headers)


def _send(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_an_unsigned_request_to_an_iam_method_is_refused_before_the_handler_runs(base_url: str) -> None:
    status, answer = _send(urllib.request.Request(f"{base_url}/items/42"))

    assert (status, answer) == (403, {"message": "Missing Authentication Token"})


def test_a_wrong_secret_or_an_altered_body_does_not_match_the_signature(base_url: str) -> None:
    wrong_secret = _signed(f"{base_url}/items/42", secret_access_key="not-the-secret")
    altered = _signed(f"{base_url}/items", method="POST", body=b'{"tenure": 3}')
    altered.data = b'{"tenure": 30}'

    for request in (wrong_secret, altered):
        status, answer = _send(request)
        assert status == 403
        assert answer["message"].startswith("The request signature we calculated does not match the signature")


def test_a_request_signed_six_minutes_ago_has_expired(base_url: str) -> None:
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        request = _signed(f"{base_url}/items/42")

    status, answer = _send(request)

    assert status == 403
    assert answer["message"].startswith(f"Signature expired: {then.strftime('%Y%m%dT%H%M%SZ')} is now earlier than")


def test_a_role_without_execute_api_invoke_is_denied_naming_action_and_resource(
    local_cloud: LocalCloud, deployed: Deployment, base_url: str
) -> None:
    role_arn = deployed.attribute("Role", "Arn")
    keys = identity.role_credentials(role_arn, "app", region=local_cloud.region)

    status, answer = _send(
        _signed(
            f"{base_url}/items/42",
            access_key_id=keys.access_key_id,
            secret_access_key=keys.secret_access_key,
            session_token=keys.session_token,
        )
    )

    invoked = f"arn:aws:execute-api:us-east-1:123456789012:{deployed.physical_id('RestApi')}/prod/GET/items/42"
    assert status == 403
    assert answer["Message"] == (
        f"User: arn:aws:sts::123456789012:assumed-role/{role_arn.rsplit('/', 1)[-1]}/app is not authorized to "
        f"perform: execute-api:Invoke on resource: {invoked} "
        "because no identity-based policy allows the execute-api:Invoke action"
    )

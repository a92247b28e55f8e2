"""API Gateway REST APIs: created from the templates in moto, served over real HTTP on 127.0.0.1.

moto stores REST APIs but serves none. `LocalApiGateway` answers `http://127.0.0.1:<port>/<api id>/<stage>/<path>`
by finding the deployed resource and method, turning the request into an API Gateway proxy event (v1)
and invoking the method's Lambda proxy integration in-process; the Lambda's answer becomes the HTTP
response. Methods with AWS_IAM authorization verify the request's SigV4 signature (service execute-api) and
authorise execute-api:Invoke for the caller before the integration runs; the verified caller appears in the
event's requestContext.identity. Stage throttling is not enforced.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from moto.apigateway.models import apigateway_backends
from moto.awslambda.utils import get_backend as get_lambda_backend

from mlloop.localcloud.authz import sigv4
from mlloop.localcloud.authz.gateway import Refusal, authenticate, authorise, authorise_service
from mlloop.localcloud.authz.policy import Principal, Request
from mlloop.localcloud.execution.lambda_environments import ThrottledError
from mlloop.localcloud.resources import CloudServices, Creator, StackContext, generated_name

_LAMBDA_URI = re.compile(r"arn:aws:apigateway:[^:]+:lambda:path/2015-03-31/functions/(?P<function>.+)/invocations")
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def _camel(properties: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key[:1].lower() + key[1:]: properties[key] for key in keys if key in properties}


def _rest_api(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {"name": p.get("Name") or generated_name(d.stack, logical_id)}
    kwargs |= _camel(p, ("Description", "BinaryMediaTypes", "ApiKeySourceType", "MinimumCompressionSize"))
    if "EndpointConfiguration" in p:
        kwargs["endpointConfiguration"] = {"types": p["EndpointConfiguration"].get("Types", ["EDGE"])}
    if "Policy" in p:
        kwargs["policy"] = json.dumps(p["Policy"]) if not isinstance(p["Policy"], str) else p["Policy"]
        d.report(
            logical_id, "AWS::ApiGateway::RestApi", "partly emulated", "the resource policy is stored, not enforced"
        )
    api = d.client("apigateway").create_rest_api(**kwargs)
    return api["id"], {"RootResourceId": api["rootResourceId"], "RestApiId": api["id"]}


def _resource(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    created = d.client("apigateway").create_resource(
        restApiId=p["RestApiId"], parentId=p["ParentId"], pathPart=p["PathPart"]
    )
    return created["id"], {"ResourceId": created["id"]}


def _method(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    client = d.client("apigateway")
    target = {"restApiId": p["RestApiId"], "resourceId": p["ResourceId"], "httpMethod": p["HttpMethod"]}
    keys = ("AuthorizationType", "ApiKeyRequired", "RequestParameters", "RequestValidatorId", "AuthorizerId")
    method = {"authorizationType": "NONE"} | _camel(p, keys)
    client.put_method(**target, **method)
    if method["authorizationType"] not in ("NONE", "AWS_IAM"):
        reason = f"{method['authorizationType']} authorization is accepted locally without checking credentials"
        d.report(logical_id, "AWS::ApiGateway::Method", "partly emulated", reason)
    integration = p.get("Integration")
    if integration:
        integration_keys = (
            "Type",
            "IntegrationHttpMethod",
            "Uri",
            "RequestTemplates",
            "PassthroughBehavior",
            "TimeoutInMillis",
        )
        client.put_integration(**target, **_camel(integration, integration_keys))
        if integration.get("Type") != "AWS_PROXY":
            reason = f"{integration.get('Type')} integrations are stored; only Lambda proxy integrations are served"
            d.report(logical_id, "AWS::ApiGateway::Method", "not emulated", reason)
    return f"{p['ResourceId']}-{p['HttpMethod']}", {}


def _deployment(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    created = d.client("apigateway").create_deployment(restApiId=p["RestApiId"], description=p.get("Description", ""))
    return created["id"], {"DeploymentId": created["id"]}


def _stage(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {
        "restApiId": p["RestApiId"],
        "stageName": p["StageName"],
        "deploymentId": p["DeploymentId"],
    }
    kwargs |= _camel(p, ("Description", "Variables", "TracingEnabled"))
    d.client("apigateway").create_stage(**kwargs)
    if p.get("MethodSettings") or p.get("AccessLogSetting"):
        reason = "method settings (throttling, metrics, logging) and access logs are not applied"
        d.report(logical_id, "AWS::ApiGateway::Stage", "partly emulated", reason)
    return p["StageName"], {}


def _request_validator(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    keys = ("Name", "ValidateRequestBody", "ValidateRequestParameters")
    created = d.client("apigateway").create_request_validator(restApiId=p["RestApiId"], **_camel(p, keys))
    d.report(logical_id, "AWS::ApiGateway::RequestValidator", "partly emulated", "stored; requests are not validated")
    return created["id"], {"RequestValidatorId": created["id"]}


def _reported_only(reason: str) -> Callable[[StackContext, str, dict[str, Any]], tuple[Any, dict[str, Any]]]:
    def create(d: StackContext, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        resource_type = d.definitions[logical_id]["Type"]
        d.report(logical_id, resource_type, "not emulated", reason)
        return p.get("Name") or logical_id, {}

    return create


CREATORS: dict[str, Creator] = {
    "AWS::ApiGateway::RestApi": _rest_api,
    "AWS::ApiGateway::Resource": _resource,
    "AWS::ApiGateway::Method": _method,
    "AWS::ApiGateway::Deployment": _deployment,
    "AWS::ApiGateway::Stage": _stage,
    "AWS::ApiGateway::RequestValidator": _request_validator,
    "AWS::ApiGateway::Account": _reported_only("the account's CloudWatch logging role has no local effect"),
    "AWS::ApiGateway::Model": _reported_only("request models are not validated locally"),
    "AWS::ApiGateway::UsagePlan": _reported_only("usage plans and quotas are not enforced locally"),
    "AWS::ApiGateway::ApiKey": _reported_only("API keys are not enforced locally"),
    "AWS::ApiGateway::UsagePlanKey": _reported_only("API keys are not enforced locally"),
    "AWS::ApiGateway::GatewayResponse": _reported_only("custom gateway responses are not served locally"),
}


# ====================================================================== the HTTP front end
def _match(resource_path: str, request_path: str) -> dict[str, str] | None:
    """Path parameters if `request_path` matches the resource's template (`/a/{id}`, `/{proxy+}`), else None."""
    template = [part for part in resource_path.split("/") if part]
    actual = [part for part in request_path.split("/") if part]
    parameters: dict[str, str] = {}
    for index, part in enumerate(template):
        if part.startswith("{") and part.endswith("+}"):
            if index >= len(actual):
                return None
            parameters[part[1:-2]] = "/".join(actual[index:])
            return parameters
        if index >= len(actual):
            return None
        if part.startswith("{") and part.endswith("}"):
            parameters[part[1:-1]] = unquote(actual[index])
        elif part != actual[index]:
            return None
    return parameters if len(template) == len(actual) else None


def _specificity(path: str) -> tuple[int, int]:
    parts = [part for part in path.split("/") if part]
    greedy = sum(1 for part in parts if part.endswith("+}"))
    variables = sum(1 for part in parts if part.startswith("{"))
    return (-greedy, -variables)


class LocalApiGateway:
    """Serves every deployed REST API of the local cloud over HTTP."""

    def __init__(self, cloud: CloudServices) -> None:
        self.cloud = cloud
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = gateway.handle(self.command, self.path, dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            # http.server dispatches on these method names.
            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="localcloud-apigateway", daemon=True)
        self._thread.start()

    def url(self, rest_api_id: str, stage: str) -> str:
        """The base URL of a deployed stage (append the resource path)."""
        return f"http://127.0.0.1:{self.port}/{rest_api_id}/{stage}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(raw_path)
        parts = split.path.split("/", 3)
        if len(parts) < 3 or not parts[1] or not parts[2]:
            return _json_response(404, {"message": "Not Found: use /<rest api id>/<stage>/<path>"})
        api_id, stage = parts[1], parts[2]
        path = "/" + (parts[3] if len(parts) > 3 else "")
        backend = apigateway_backends[self.cloud.account_id][self.cloud.region]
        api = backend.apis.get(api_id)
        if api is None or stage not in api.stages:
            return _json_response(403, {"message": "Forbidden"})
        route = self._route(api, method, path)
        if route is None:
            return _json_response(403, {"message": "Missing Authentication Token"})
        resource, http_method, path_parameters = route
        caller: Principal | None = None
        if resource.resource_methods[http_method].authorization_type == "AWS_IAM":
            invoked = f"arn:aws:execute-api:{self.cloud.region}:{self.cloud.account_id}:{api_id}/{stage}/{method}{path}"
            refused, caller = self._authorise_iam(
                method, raw_path=raw_path, headers=headers, body=body, query=split.query, invoked=invoked
            )
            if refused is not None:
                return refused
        integration = resource.resource_methods[http_method].method_integration
        uri = (integration.uri if integration else "") or ""
        matched = _LAMBDA_URI.match(uri)
        if integration is None or integration.integration_type != "AWS_PROXY" or not matched:
            return _json_response(500, {"message": "Internal server error: only Lambda proxy integrations run locally"})
        event = self._event(
            api_id=api_id,
            stage=stage,
            resource=resource,
            method=method,
            path=path,
            query=split.query,
            headers=headers,
            body=body,
            path_parameters=path_parameters,
            caller=caller,
        )
        event["stageVariables"] = api.stages[stage].variables or None
        function_arn = matched.group("function")
        region = function_arn.split(":")[3]
        try:
            # API Gateway invokes the integration as apigateway.amazonaws.com: the function's policy must allow it.
            invoked = f"arn:aws:execute-api:{self.cloud.region}:{self.cloud.account_id}:{api_id}/{stage}/{method}{path}"
            authorise_service(
                "apigateway.amazonaws.com",
                "lambda:InvokeFunction",
                function_arn,
                account=self.cloud.account_id,
                source_arn=invoked,
                source_account=self.cloud.account_id,
            )
        except Refusal:
            return _json_response(500, {"message": "Internal server error"})
        function = get_lambda_backend(self.cloud.account_id, region).get_function(function_arn)
        assert self.cloud.lambdas is not None
        try:
            payload, errored, _ = self.cloud.lambdas.invoke(function, event)
        except ThrottledError:
            # A throttled Lambda integration is API Gateway's INTEGRATION_FAILURE response: 500, not 429
            # (re:Post "API Gateway proxy integration does not forward Lambda throttling (HTTP 429) to client").
            return _json_response(500, {"message": "Internal server error"})
        if errored:
            return _json_response(502, {"message": "Internal server error"})
        return _proxy_response(payload)

    def _authorise_iam(
        self, method: str, *, raw_path: str, headers: dict[str, str], body: bytes, query: str, invoked: str
    ) -> tuple[tuple[int, dict[str, str], bytes] | None, Principal | None]:
        """AWS_IAM methods: SigV4 (service execute-api) verified and execute-api:Invoke authorised before the
        integration runs; refusals are API Gateway's 403 answers (API Gateway Developer Guide, "Control access to
        a REST API with IAM permissions")."""
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            signed = sigv4.parse(lowered, query)
            if signed is None:
                return _json_response(403, {"message": "Missing Authentication Token"}), None
            caller, _ = authenticate(
                signed,
                account_id=self.cloud.account_id,
                method=method,
                url=f"http://{lowered.get('host', '127.0.0.1')}{raw_path}",
                headers=lowered,
                body=body,
                query=query,
            )
        except sigv4.SignatureError as error:
            return _json_response(403, {"message": error.message}), None
        if caller.is_admin:
            return None, caller
        request = Request(caller, "execute-api:Invoke", invoked, {"aws:PrincipalAccount": caller.account})
        try:
            authorise(request)
        except Refusal as refusal:
            return _json_response(403, {"Message": refusal.message}), None
        return None, caller

    @staticmethod
    def _route(api: Any, method: str, path: str) -> tuple[Any, str, dict[str, str]] | None:
        candidates = []
        for resource in api.resources.values():
            resource_path = resource.get_path()
            parameters = _match(resource_path, path)
            if parameters is None:
                continue
            methods = resource.resource_methods or {}
            chosen = method if method in methods else "ANY" if "ANY" in methods else None
            if chosen:
                candidates.append((_specificity(resource_path), resource, chosen, parameters))
        if not candidates:
            return None
        candidates.sort(key=lambda item: item[0], reverse=True)
        _, resource, chosen, parameters = candidates[0]
        return resource, chosen, parameters

    def _event(
        self,
        *,
        api_id: str,
        stage: str,
        resource: Any,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        path_parameters: dict[str, str],
        caller: Principal | None = None,
    ) -> dict[str, Any]:
        multi_query = parse_qs(query, keep_blank_values=True)
        credential = _CREDENTIAL.search(headers.get("Authorization", ""))
        access_key = credential.group(1) if credential else None
        # The verified caller of an AWS_IAM method (AWS: the assumed role's ARN and "<role id>:<session>").
        user_arn = caller.arn if caller is not None else None
        caller_id = caller.arn.split("/", 1)[-1].replace("/", ":") if caller is not None and caller.role_arn else None
        try:
            text: str | None = body.decode("utf-8") if body else None
            encoded = False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        now = time.time()
        return {
            "resource": resource.get_path(),
            "path": path,
            "httpMethod": method,
            "headers": headers or None,
            "multiValueHeaders": {name: [value] for name, value in headers.items()} or None,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "requestContext": {
                "accountId": self.cloud.account_id,
                "apiId": api_id,
                "resourceId": resource.id,
                "resourcePath": resource.get_path(),
                "stage": stage,
                "requestId": str(uuid.uuid4()),
                "httpMethod": method,
                "path": f"/{stage}{path}",
                "protocol": "HTTP/1.1",
                "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "requestTimeEpoch": int(now * 1000),
                "domainName": f"127.0.0.1:{self.port}",
                "identity": {
                    "sourceIp": "127.0.0.1",
                    "userAgent": headers.get("User-Agent"),
                    "accessKey": access_key if caller is not None else None,
                    "accountId": caller.account if caller is not None else None,
                    "caller": caller_id or (self.cloud.account_id if caller is not None else None),
                    "user": caller_id or (self.cloud.account_id if caller is not None else None),
                    "userArn": user_arn,
                },
            },
            "body": text,
            "isBase64Encoded": encoded,
        }


def _json_response(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


def _proxy_response(payload: str) -> tuple[int, dict[str, str], bytes]:
    try:
        answer = json.loads(payload)
        status = int(answer["statusCode"])
    except (ValueError, KeyError, TypeError):
        return _json_response(502, {"message": "Internal server error"})
    headers = {str(k): str(v) for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ", ".join(str(v) for v in values)
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    headers.setdefault("Content-Type", "application/json")
    return status, headers, raw

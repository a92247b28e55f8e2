"""The prediction API: IAM-authenticated (SigV4), throttled, bounded by a request model, optionally behind AWS WAF,
routing each model's paths to that model's front-door function.

A stage's only model has its API in its serving stack, at the root (`POST /predict`). Beside other models one API
per stage (its own stack, infra/stacks/api.py) routes `/models/<model>/…` to each model's front door.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_wafv2 as wafv2

from infra.config import FrontDoorConfig
from infra.constructs.platform_function import acknowledge


@dataclass(frozen=True)
class ApiRoute:
    """One model's paths, under its `path_prefix` (StageConfig.api_path_prefix: the root or `/models/<model>`)."""

    path_prefix: str
    function: lambda_.IFunction
    frontdoor: FrontDoorConfig

    @property
    def model(self) -> str | None:
        return self.path_prefix.rsplit("/", 1)[-1] or None


def _suffix(model: str | None) -> str:
    return "" if model is None else "".join(part.capitalize() for part in model.split("-"))


def prediction_api(
    scope: Stack, *, prefix: str, stage: str, destroy: bool, description: str, routes: list[ApiRoute]
) -> apigateway.RestApi:
    """The API in `scope` (ids as the serving stack always had them, so a single-model stage keeps its API)."""
    # Stage-wide settings of a shared API: the most any model allows; each model's predict method then gets its own.
    throttle_rate = max(r.frontdoor.throttle_rate for r in routes)
    throttle_burst = max(r.frontdoor.throttle_burst for r in routes)
    waf_limits = [r.frontdoor.waf_rate_limit_per_ip for r in routes if r.frontdoor.waf_rate_limit_per_ip is not None]
    method_options = {
        f"{r.path_prefix}/predict/POST": apigateway.MethodDeploymentOptions(
            throttling_rate_limit=r.frontdoor.throttle_rate, throttling_burst_limit=r.frontdoor.throttle_burst
        )
        for r in routes
        if r.model is not None
    }
    access_logs = logs.LogGroup(
        scope,
        "ApiAccessLogs",
        retention=logs.RetentionDays.ONE_MONTH if destroy else logs.RetentionDays.ONE_YEAR,
        removal_policy=RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN,
    )
    api = apigateway.RestApi(
        scope,
        "Api",
        rest_api_name=f"{prefix}-serving",
        description=description,
        endpoint_types=[apigateway.EndpointType.REGIONAL],
        cloud_watch_role=True,
        cloud_watch_role_removal_policy=RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN,
        deploy_options=apigateway.StageOptions(
            stage_name=stage,
            throttling_rate_limit=throttle_rate,
            throttling_burst_limit=throttle_burst,
            method_options=method_options or None,
            access_log_destination=apigateway.LogGroupLogDestination(access_logs),
            access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                caller=True,
                http_method=True,
                ip=True,
                protocol=True,
                request_time=True,
                resource_path=True,
                response_length=True,
                status=True,
                user=True,
            ),
            logging_level=apigateway.MethodLoggingLevel.ERROR,
            tracing_enabled=True,
            metrics_enabled=True,
        ),
        default_method_options=apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM),
    )
    # The API's own 400 for a body outside the request model, in the front door's error shape. A fixed
    # message: the validator's own text carries quotes that would break the JSON of a mapping template.
    limit = (
        f"with 1 to {routes[0].frontdoor.max_batch_records} records"
        if len(routes) == 1
        else "with 1 to the model's frontdoor.max_batch_records records"
    )
    api.add_gateway_response(
        "BadRequestBody",
        type=apigateway.ResponseType.BAD_REQUEST_BODY,
        status_code="400",
        templates={
            "application/json": json.dumps(
                {
                    "error": "invalid request",
                    "fields": {"body": f'expected one JSON record or {{"instances": [...]}} {limit}'},
                    "request_id": "$context.requestId",
                }
            )
        },
    )
    # Request models before the validator and the methods: the order the deployment's logical id is hashed in.
    request_models = [_request_model(api, route) for route in routes]
    validator = api.add_request_validator(
        "RequestValidator",
        request_validator_name="body-and-parameters",
        validate_request_body=True,
        validate_request_parameters=True,
    )
    for route, request_model in zip(routes, request_models, strict=True):
        _add_route(route, request_model, validator, api.root)
    findings: dict[str, str] = {}
    if not waf_limits:
        findings["AwsSolutions-APIG3"] = (
            "No web ACL on this stage by stage config (waf_rate_limit_per_ip absent; prod has one): every method "
            "requires SigV4 (IAM), the stage is throttled per stage config and bodies are bounded."
        )
    else:
        _web_acl(scope, prefix, api, max(waf_limits))
    acknowledge(
        api,
        {
            **findings,
            "AwsSolutions-COG4": "The API authenticates callers with IAM (SigV4), not Cognito user pools.",
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AmazonAPIGatewayPushToCloudWatchLogs]": (
                "API Gateway's account-level logging role; the managed policy is the documented one."
            ),
            "Serverless-APIGWDefaultThrottling": "Throttling is set on the stage from stage config.",
        },
    )
    return api


def _request_model(api: apigateway.RestApi, route: ApiRoute) -> apigateway.Model:
    suffix = _suffix(route.model)
    # The gateway's size limit: at most the configured batch, each record a flat object; the front door then
    # checks every field against the deployed contract.
    return api.add_model(
        f"PredictRequestModel{suffix}",
        content_type="application/json",
        model_name=f"PredictRequest{suffix}",
        schema=apigateway.JsonSchema(
            schema=apigateway.JsonSchemaVersion.DRAFT4,
            type=apigateway.JsonSchemaType.OBJECT,
            properties={
                "instances": apigateway.JsonSchema(
                    type=apigateway.JsonSchemaType.ARRAY,
                    min_items=1,
                    max_items=route.frontdoor.max_batch_records,
                    items=apigateway.JsonSchema(type=apigateway.JsonSchemaType.OBJECT, max_properties=64),
                )
            },
            max_properties=64,
        ),
    )


def _add_route(
    route: ApiRoute,
    request_model: apigateway.Model,
    validator: apigateway.RequestValidator,
    api_root: apigateway.IResource,
) -> None:
    # No permission for the console's test-invoke-stage: nothing in the loop invokes through it (least privilege).
    integration = apigateway.LambdaIntegration(route.function, allow_test_invoke=False)
    root = api_root
    for part in filter(None, route.path_prefix.split("/")):
        root = root.get_resource(part) or root.add_resource(part)
    root.add_resource("predict").add_method(
        "POST",
        integration,
        request_validator=validator,
        request_models={"application/json": request_model},
    )
    for path in ("health", "model"):
        root.add_resource(path).add_method("GET", integration, request_validator=validator)


def _web_acl(scope: Stack, prefix: str, api: apigateway.RestApi, rate_limit: int) -> wafv2.CfnWebACL:
    """AWS WAF in front of the API stage: AWS's common and known-bad-inputs rule sets, and a per-IP rate rule."""

    def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
        return wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True, metric_name=f"{prefix}-{name}", sampled_requests_enabled=True
        )

    def managed(priority: int, name: str, overrides: list[str]) -> wafv2.CfnWebACL.RuleProperty:
        return wafv2.CfnWebACL.RuleProperty(
            name=name,
            priority=priority,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS",
                    name=name,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                        )
                        for rule in overrides
                    ]
                    or None,
                )
            ),
            visibility_config=visibility(name),
        )

    acl = wafv2.CfnWebACL(
        scope,
        "ApiWebAcl",
        name=f"{prefix}-serving-api",
        description=f"{prefix}: web ACL of the prediction API",
        scope="REGIONAL",
        default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
        visibility_config=visibility("serving-api"),
        rules=[
            wafv2.CfnWebACL.RuleProperty(
                name="RatePerIp",
                priority=0,
                action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                # Requests per client IP over the last 300 s (AWS WAF's default evaluation window).
                statement=wafv2.CfnWebACL.StatementProperty(
                    rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                        limit=rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                    )
                ),
                visibility_config=visibility("rate-per-ip"),
            ),
            # SizeRestrictions_BODY blocks bodies over 8 KB; a full batch is larger, and the front door bounds
            # the body itself (max_batch_records x max_record_bytes): counted, not blocked.
            managed(1, "AWSManagedRulesCommonRuleSet", ["SizeRestrictions_BODY"]),
            managed(2, "AWSManagedRulesKnownBadInputsRuleSet", []),
        ],
    )
    wafv2.CfnWebACLAssociation(
        scope, "ApiWebAclAssociation", resource_arn=api.deployment_stage.stage_arn, web_acl_arn=acl.attr_arn
    )
    return acl

"""ApiStack: one prediction API for a stage with several models, routing `/models/<model>/…` to each model's front
door (in that model's serving stack).

The API imports each front door by ARN, so the invoke permissions live here with the API: this stack depends on
the models' serving stacks and none of them on it. Removing a model drops its routes here on the next deploy,
after which its stacks can be destroyed.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Environment, Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig
from infra.constructs.prediction_api import ApiRoute, prediction_api
from infra.stacks.serving import ServingStack


class ApiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        models: list[tuple[StageConfig, ServingStack]],
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, env=env, description=f"{config.prefix}: the prediction API of every model"
        )
        routes = [
            ApiRoute(
                model.api_path_prefix,
                lambda_.Function.from_function_attributes(
                    self,
                    f"FrontDoor{''.join(part.capitalize() for part in model.model_name.split('-'))}",
                    function_arn=serving.frontdoor_function.function_arn,
                    same_environment=True,
                ),
                model.frontdoor,
            )
            for model, serving in models
        ]
        names = ", ".join(model.model_name for model, _ in models)
        self.api = prediction_api(
            self,
            prefix=config.prefix,
            stage=config.stage,
            destroy=config.removal_policy == "destroy",
            description=f"{config.prefix}: predictions from the {names} models (IAM auth)",
            routes=routes,
        )
        CfnOutput(self, "ApiUrl", value=self.api.url)

"""Deploy model: the approval event (EventBridge), the deploy state machine's start/check/abandon steps and the
operator's rollback."""

from __future__ import annotations

from typing import Any, Literal

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import BaseModel, Field, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.deploy_model.logic import ApprovedPackage, Deployer, DeployState
from functions.deploy_model.settings import DeploySettings
from functions.shared.observability import logger, metrics, tracer

# Metric per terminal outcome; the dashboard and the people's alarms read these names.
OUTCOME_METRICS = {
    "deployed": "DeploySucceeded",
    "rolled_back": "DeployRolledBack",
    "failed": "DeployFailed",
    "timed_out": "DeployFailed",
}


class ModelPackageStateDetail(BaseModel):
    ModelPackageGroupName: str
    ModelPackageArn: str
    ModelApprovalStatus: str


class ModelPackageStateChange(EventBridgeModel):
    detail: ModelPackageStateDetail


class StartStep(BaseModel):
    action: Literal["start"]
    event_id: str
    model_package_arn: str
    emergency: bool = False


class CheckStep(BaseModel):
    action: Literal["check"]
    deploy: dict[str, Any]


class AbandonStep(BaseModel):
    action: Literal["abandon"]
    event_id: str
    model_package_arn: str
    error: dict[str, Any] = Field(default_factory=dict)


class RollbackStep(BaseModel):
    """An operator's rollback (`mlloop rollback`), invoked directly."""

    action: Literal["rollback"]
    request_id: str
    model_package_arn: str
    emergency: bool = False


class Step(BaseModel):
    step: StartStep | CheckStep | AbandonStep | RollbackStep = Field(discriminator="action")


def _deployer() -> Deployer:
    session = boto3.session.Session()
    return Deployer(
        DeploySettings.from_env(),
        sagemaker=session.client("sagemaker"),
        s3=session.client("s3"),
        sns=session.client("sns"),
        stepfunctions=session.client("stepfunctions"),
    )


def _record(state: DeployState) -> dict[str, Any]:
    metric = OUTCOME_METRICS.get(state.status)
    if metric:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=1)
        logger.info("deploy finished", extra=state.to_dict())
    return state.to_dict()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deployer = _deployer()
    if "detail-type" in event:
        change = parse(event=event, model=ModelPackageStateChange)
        return deployer.accept(
            ApprovedPackage(
                event_id=change.id,
                model_package_arn=change.detail.ModelPackageArn,
                model_package_group=change.detail.ModelPackageGroupName,
                status=change.detail.ModelApprovalStatus,
            )
        )
    step = parse(event={"step": event}, model=Step).step
    if isinstance(step, StartStep):
        return _record(
            deployer.start(event_id=step.event_id, model_package_arn=step.model_package_arn, emergency=step.emergency)
        )
    if isinstance(step, RollbackStep):
        outcome = deployer.rollback(
            request_id=step.request_id, model_package_arn=step.model_package_arn, emergency=step.emergency
        )
        logger.info("rollback", extra=outcome)
        return outcome
    if isinstance(step, CheckStep):
        return _record(deployer.check(DeployState.from_dict(step.deploy)))
    reason = str(step.error.get("Cause") or step.error.get("Error") or "unknown error")
    return _record(deployer.abandon(event_id=step.event_id, model_package_arn=step.model_package_arn, reason=reason))

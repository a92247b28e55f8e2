"""The SageMaker emulation of the local cloud: training jobs, hosted endpoints, blue/green updates, registry.

install(cloud) patches moto's SageMaker and sagemaker-runtime classes in this process so that plain
boto3 calls against the local endpoint behave as SageMaker does (see sagemaker_training,
sagemaker_endpoints and sagemaker_deployments for each behaviour), plus the model registry fixes:

- a model package created without ModelApprovalStatus is PendingManualApproval (moto leaves none);
- update_model_package keeps the fields a call omits (moto overwrites them with None) and merges
  CustomerMetadataProperties, as AWS does;
- delete_model_package and delete_model_package_group work;
- every package creation and approval change emits an AWS-shaped "SageMaker Model Package State
  Change" event through the cloud's EventBridge delivery.

The fault-injection functions below are local-only test and demo tools, not a fake AWS API.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from mlloop.localcloud import aws_state, sagemaker_deployments, sagemaker_training
from mlloop.localcloud.sagemaker_endpoints import (
    EndpointFault,
    add_fault,
    all_hosts,
    clear_faults,
    drop_host,
    host_for,
    response_invoke_endpoint,
    stop_spares,
)

_originals: dict[str, tuple[type, str, Any]] = {}


# ---------------------------------------------------------------- fault injection (local only)


def fail_endpoint(
    endpoint_name: str,
    *,
    variant: str | None = None,
    status_code: int = 500,
    message: str = "injected model failure",
    count: int | None = None,
) -> EndpointFault:
    """Make the endpoint's container (or one variant's) answer `status_code`: InvokeEndpoint raises ModelError."""
    return add_fault(
        EndpointFault(endpoint_name, variant, "error", status_code=status_code, message=message, remaining=count)
    )


def slow_endpoint(
    endpoint_name: str, *, seconds: float, variant: str | None = None, count: int | None = None
) -> EndpointFault:
    """Add `seconds` of real model latency (not scaled: callers' timeouts are real)."""
    return add_fault(EndpointFault(endpoint_name, variant, "slow", delay_seconds=seconds, remaining=count))


def throttle_endpoint(endpoint_name: str, *, count: int | None = None) -> EndpointFault:
    """InvokeEndpoint raises ThrottlingException ("Rate exceeded")."""
    return add_fault(EndpointFault(endpoint_name, None, "throttle", remaining=count))


def hide_endpoint(endpoint_name: str, *, count: int | None = None) -> EndpointFault:
    """The endpoint disappears for InvokeEndpoint (ValidationError "Endpoint ... not found") until cleared."""
    return add_fault(EndpointFault(endpoint_name, None, "missing", remaining=count))


def clear_endpoint_faults(endpoint_name: str | None = None) -> None:
    """Remove injected faults for one endpoint, or all."""
    clear_faults(endpoint_name)


def endpoint_traffic(
    endpoint_name: str, *, account_id: str = "123456789012", region: str = "us-east-1"
) -> dict[str, float]:
    """Share of traffic per variant right now, including a green fleet during UpdateEndpoint."""
    host = host_for(account_id, region, endpoint_name)
    return host.traffic() if host is not None else {}


def flush_data_capture(endpoint_name: str | None = None) -> int:
    """Write buffered data-capture records to S3 now; returns how many were written."""
    return sum(h.flush_capture() for h in all_hosts() if endpoint_name is None or h.name == endpoint_name)


def wait_for_training_job(job_arn: str, timeout: float | None = None) -> None:
    """Block until a local training job's process has finished."""
    sagemaker_training.wait_for_training(job_arn, timeout)


# ---------------------------------------------------------------- registry


def _package_event(package: Any, updated_fields: list[str] | None = None) -> None:
    """SageMaker's event: DescribeModelPackage's fields, ISO times, and on updates the fields that changed."""
    described = {k: v for k, v in package.gen_response_object().items() if v is not None}
    described.pop("Arn", None)
    described["ModelPackageArn"] = package.arn
    if updated_fields:
        described["UpdatedModelPackageFields"] = updated_fields
    detail = json.loads(json.dumps(described, default=lambda v: v.strftime("%Y-%m-%dT%H:%M:%SZ")))
    aws_state.emit("aws.sagemaker", "SageMaker Model Package State Change", detail, [package.arn])


def _create_model_package(self: Any, *args: Any, **kwargs: Any) -> str:
    if kwargs.get("model_approval_status") is None:
        kwargs["model_approval_status"] = "PendingManualApproval"
    arn = _original("create_model_package")(self, *args, **kwargs)
    _package_event(self.model_packages[arn])
    return str(arn)


def _update_model_package(  # noqa: PLR0917 - moto calls the backend method positionally
    self: Any,
    model_package_arn: str,
    model_approval_status: str | None,
    approval_description: str | None,
    customer_metadata_properties: dict[str, str] | None,
    customer_metadata_properties_to_remove: list[str],
    additional_inference_specifications_to_add: list[Any] | None,
) -> str:
    package = self.describe_model_package(model_package_arn)
    before = (
        package.model_approval_status,
        package.approval_description,
        dict(package.customer_metadata_properties or {}),
    )
    kept_specs = package.additional_inference_specifications
    merged = {**(package.customer_metadata_properties or {}), **(customer_metadata_properties or {})}
    arn = _original("update_model_package")(
        self,
        model_package_arn,
        model_approval_status or before[0],
        approval_description if approval_description is not None else package.approval_description,
        merged or None,
        customer_metadata_properties_to_remove or [],
        additional_inference_specifications_to_add,
    )
    if additional_inference_specifications_to_add is None:
        package.additional_inference_specifications = kept_specs
    after = (
        package.model_approval_status,
        package.approval_description,
        dict(package.customer_metadata_properties or {}),
    )
    names = ("ModelApprovalStatus", "ApprovalDescription", "CustomerMetadataProperties")
    changed = [name for name, old, new in zip(names, before, after, strict=True) if old != new]
    if changed:
        _package_event(package, changed)
    return str(arn)


def _response_delete_model_package(self: Any) -> Any:
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ValidationError

    backend = self.sagemaker_backend
    name = self._get_param("ModelPackageName")
    arn = backend.model_package_name_mapping.get(name, name)
    package = backend.model_packages.pop(arn, None)
    if package is None:
        raise ValidationError(message=f"Model package {name} not found")
    for key in [k for k, v in backend.model_package_name_mapping.items() if v == arn]:
        del backend.model_package_name_mapping[key]
    return EmptyResult()


def _response_delete_model_package_group(self: Any) -> Any:
    from moto.core.responses import EmptyResult
    from moto.sagemaker.exceptions import ConflictException, ValidationError

    backend = self.sagemaker_backend
    name = self._get_param("ModelPackageGroupName").rsplit("/", 1)[-1]
    if name not in backend.model_package_groups:
        raise ValidationError(message=f"ModelPackageGroup {name} does not exist.")
    if any(p.model_package_group_name == name for p in backend.model_packages.values()):
        raise ConflictException(f"Model package group {name} cannot be deleted because it has model packages.")
    del backend.model_package_groups[name]
    return EmptyResult()


# ---------------------------------------------------------------- training and endpoints


def _response_create_training_job(self: Any) -> Any:
    # Read before moto runs: it overwrites the request's MetricDefinitions in place.
    params = copy.deepcopy(
        {
            "AlgorithmSpecification": self._get_param("AlgorithmSpecification"),
            "Environment": self._get_param("Environment"),
        }
    )
    result = _original("create_training_job")(self)
    job = self.sagemaker_backend.training_jobs[self._get_param("TrainingJobName")]
    sagemaker_training.start_training(self.current_account, self.region, job, params)
    return result


def _response_stop_training_job(self: Any) -> Any:
    from moto.core.responses import EmptyResult

    name = self._get_param("TrainingJobName")
    self.sagemaker_backend.describe_training_job(name)
    sagemaker_training.stop_training(self.sagemaker_backend.training_jobs[name])
    return EmptyResult()


def _response_update_endpoint(self: Any) -> Any:
    from moto.core.responses import ActionResult

    params = {
        key: self._get_param(key)
        for key in ("EndpointName", "EndpointConfigName", "DeploymentConfig", "RetainDeploymentConfig")
    }
    arn = sagemaker_deployments.update_endpoint(self.sagemaker_backend, params)
    return ActionResult({"EndpointArn": arn})


def _original(name: str) -> Any:
    return _originals[name][2]


def _wrap(cls: type, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(cls, name)
    _originals[name] = (cls, name, original)
    setattr(cls, name, make(original))


def _add(cls: type, name: str, function: Any) -> None:
    _originals[name] = (cls, name, None)
    setattr(cls, name, function)


def install(cloud: Any) -> None:
    """Patch moto's SageMaker in this process; events go through the cloud's EventBridge delivery."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    aws_state.bind(cloud)
    if _originals:
        return
    backend, response = SageMakerModelBackend, SageMakerResponse
    _wrap(backend, "create_model_package", lambda _orig: _create_model_package)
    _wrap(backend, "update_model_package", lambda _orig: _update_model_package)
    _wrap(
        backend,
        "create_endpoint",
        lambda orig: (
            lambda self, endpoint_name, endpoint_config_name, tags: sagemaker_deployments.create_endpoint(
                orig, self, endpoint_name, endpoint_config_name, tags
            )
        ),
    )
    _wrap(
        backend,
        "delete_endpoint",
        lambda orig: lambda self, endpoint_name: sagemaker_deployments.delete_endpoint(orig, self, endpoint_name),
    )
    _wrap(
        backend,
        "update_endpoint_weights_and_capacities",
        lambda orig: (
            lambda self, endpoint_name, desired_weights_and_capacities: sagemaker_deployments.update_weights(
                orig, self, endpoint_name, desired_weights_and_capacities
            )
        ),
    )
    _wrap(response, "create_training_job", lambda _orig: _response_create_training_job)
    _add(response, "stop_training_job", _response_stop_training_job)
    _add(response, "update_endpoint", _response_update_endpoint)
    _add(response, "delete_model_package", _response_delete_model_package)
    _add(response, "delete_model_package_group", _response_delete_model_package_group)
    _wrap(SageMakerRuntimeResponse, "invoke_endpoint", lambda _orig: response_invoke_endpoint)


def uninstall() -> None:
    """Stop training processes and endpoint hosts (flushing data capture) and restore moto's classes."""
    sagemaker_training.stop_all()
    for host in all_hosts():
        drop_host(host.account_id, host.region, host.name)
    stop_spares()
    clear_faults()
    for cls, name, original in list(_originals.values()):
        if original is None:
            delattr(cls, name)
        else:
            setattr(cls, name, original)
    _originals.clear()
    aws_state.unbind()


__all__ = [
    "clear_endpoint_faults",
    "endpoint_traffic",
    "fail_endpoint",
    "flush_data_capture",
    "hide_endpoint",
    "install",
    "slow_endpoint",
    "throttle_endpoint",
    "uninstall",
    "wait_for_training_job",
]

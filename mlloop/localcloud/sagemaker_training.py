"""SageMaker training jobs that really train: the image's environment, launched as the image's entry point does.

moto marks every training job Completed at once and runs nothing (notes/moto-5.2.5.md). Here
CreateTrainingJob does what SageMaker and the training container do, in a per-job root that stands for
/opt/ml (SAGEMAKER_BASE_DIR):

- SageMaker's part: input/config/hyperparameters.json (the job's HyperParameters as given),
  inputdataconfig.json, resourceconfig.json (one host, "localhost": the toolkit waits until every host
  resolves, and algo-1 never does here), and every InputDataConfig channel downloaded from S3 (S3Prefix or
  ManifestFile) into input/data/<channel>;
- the container's part: the TrainingImage's environment (mlloop.localcloud.images, e.g. the scikit-learn
  1.9-0 image's packages and Python) runs the real sagemaker-training toolkit's `train` entry point
  (`python -m sagemaker_training.cli.train`), which downloads sagemaker_submit_directory from S3 with the
  job's credentials, installs a requirements.txt found there with pip, sets SM_* and runs
  sagemaker_program with the hyperparameters as arguments, exactly as in the container;
- the process environment holds only what SageMaker gives a container: the image's variables, the job's
  Environment, TRAINING_JOB_NAME/ARN, the job role's credentials (identity.role_credentials), AWS_REGION
  and AWS_ENDPOINT_URL pointing at the local cloud. Nothing comes from this process's environment.
- on exit 0, model/ becomes model.tar.gz and output/data/ becomes output.tar.gz under
  S3OutputPath/<job>/output/; otherwise the job is Failed with FailureReason "AlgorithmError: " plus the
  failure file the toolkit wrote (for a failed script the scikit-learn container's toolkit leaves its
  ErrorMessage empty: the traceback is in the job's log, as on SageMaker).

The scikit-learn image sets SAGEMAKER_TRAINING_MODULE=sagemaker_sklearn_container.training:main, a wheel AWS
builds in its CI and does not publish; its main() is `entry_point.run(...)` with the process runner, which is
what the toolkit runs itself when no framework module is set, so the local job leaves the variable unset.

describe_training_job shows InProgress (SecondaryStatus Starting, Downloading, Training, Uploading)
then Completed, Failed or Stopped, and each change is emitted as "SageMaker Training Job State Change".
The process output goes to CloudWatch Logs, group /aws/sagemaker/TrainingJobs, stream <job>/algo-1-<epoch>.
StopTrainingJob kills the job's processes; MaxRuntimeInSeconds (not scaled: training time is real) stops them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from mlloop.localcloud import aws_state, images
from mlloop.localcloud.identity import role_credentials, s3_client_as

_jobs_lock = threading.Lock()
_runs: dict[str, TrainingRun] = {}
# DescribeTrainingJob's FailureReason is at most 1024 characters (botocore service model).
_FAILURE_REASON_MAX = 1024
_LOCAL_HOST = "localhost"


def _tar_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


class DataTransferError(RuntimeError):
    """SageMaker could not download a channel (or upload the output) with the job's role; the message is the job's
    FailureReason."""


def _download_failed(uri: str, error: ClientError) -> DataTransferError:
    # SageMaker's FailureReason for a channel object the role may not read, with S3's error code and message:
    # "ClientError: Data download failed:Unable to download object s3://... (AccessDenied: Access Denied)"
    # (aws/amazon-sagemaker-examples issue 4384).
    detail = error.response.get("Error", {})
    return DataTransferError(
        f"ClientError: Data download failed:Unable to download object {uri} "
        f"({detail.get('Code', 'Unknown')}: {detail.get('Message', '')})"
    )


def _download(s3: Any, uri: str) -> bytes:
    bucket, key = aws_state.split_s3_uri(uri)
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as error:
        raise _download_failed(uri, error) from error


def _list(s3: Any, uri: str) -> list[str]:
    """The keys under an S3Prefix channel's prefix, sorted (SageMaker lists it with the role: s3:ListBucket)."""
    bucket, prefix = aws_state.split_s3_uri(uri)
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
    except ClientError as error:
        raise _download_failed(uri, error) from error


def _upload(s3: Any, uri: str, body: bytes, kms_key_id: str | None) -> None:
    """SageMaker's upload of the job's output with the job's role (s3:PutObject, and the key's use for SSE-KMS).
    The FailureReason's wording for a refused upload is not documented; it carries S3's code and message."""
    bucket, key = aws_state.split_s3_uri(uri)
    encryption = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_id} if kms_key_id else {}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, **encryption)
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise DataTransferError(
            f"ClientError: Unable to upload {uri} ({detail.get('Code', 'Unknown')}: {detail.get('Message', '')})"
        ) from error


class TrainingRun:
    """One training job's process and its status on moto's FakeTrainingJob."""

    def __init__(self, account_id: str, region: str, job: Any, environment: dict[str, str]):
        self.account_id = account_id
        self.region = region
        self.job = job
        self.environment = environment
        self.process: subprocess.Popen[str] | None = None
        self.stop_requested = threading.Event()
        self.logs = ""
        self.workdir = Path(tempfile.mkdtemp(prefix=f"localcloud-training-{job.training_job_name}-"))
        self.thread = threading.Thread(
            target=self._run, name=f"localcloud-training-{job.training_job_name}", daemon=True
        )

    # -- status as DescribeTrainingJob shows it
    def _secondary(self, status: str, message: str) -> None:
        now = aws_state.utcnow()
        transitions = self.job.secondary_status_transitions
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": status, "StartTime": now, "StatusMessage": message})
        self.job.secondary_status = status
        self.job.last_modified_time = now

    def _finish(self, status: str, secondary: str, message: str, failure: str | None = None) -> None:
        self._secondary(secondary, message)
        self.job.secondary_status_transitions[-1]["EndTime"] = self.job.last_modified_time
        self.job.training_job_status = status
        self.job.failure_reason = failure
        self.job.training_end_time = aws_state.utcnow()
        self._emit()

    def _emit(self) -> None:
        detail = json.loads(json.dumps(self.job.response_object, default=lambda v: int(v.timestamp() * 1000)))
        aws_state.emit("aws.sagemaker", "SageMaker Training Job State Change", detail, [self.job.arn])

    def start(self) -> None:
        job = self.job
        job.training_job_status = "InProgress"
        job.model_artifacts = None
        job.training_end_time = None
        job.final_metric_data_list = None
        job.secondary_status_transitions = []
        self._secondary("Starting", "Preparing the instances for training")
        self._emit()
        self.thread.start()

    # -- the container's preparation
    def _download_channels(self, input_dir: Path) -> dict[str, Path]:
        """SageMaker's download of every channel, with the job's role (its policies, the bucket's and the key's
        decide, as on SageMaker)."""
        s3 = s3_client_as(self.job.role_arn, self.job.training_job_name, region=self.region)
        channels = {}
        for channel in self.job.input_data_config or []:
            name = channel["ChannelName"]
            source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
            target = input_dir / "data" / name
            target.mkdir(parents=True, exist_ok=True)
            uri = source.get("S3Uri", "")
            if source.get("S3DataType") == "ManifestFile":
                manifest = json.loads(_download(s3, uri))
                prefix = manifest[0]["prefix"]
                for relative in manifest[1:]:
                    self._fetch(s3, prefix.rstrip("/") + "/" + relative, target / relative)
            else:
                bucket, key_prefix = aws_state.split_s3_uri(uri)
                keys = _list(s3, uri)
                if not keys:
                    raise FileNotFoundError(f"No S3 objects found under S3 URL {uri!r} given in input data source.")
                base = key_prefix if key_prefix.endswith("/") or key_prefix in keys else key_prefix.rsplit("/", 1)[0]
                for key in keys:
                    relative = key[len(base) :].lstrip("/") or key.rsplit("/", 1)[-1]
                    self._fetch(s3, f"s3://{bucket}/{key}", target / relative)
            channels[name] = target
        return channels

    def _fetch(self, s3: Any, uri: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_download(s3, uri))

    def _write_config(self, config_dir: Path, channels: dict[str, Path]) -> None:
        """The files SageMaker writes into /opt/ml/input/config before the container starts."""
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(self.job.hyper_parameters or {}))
        data_config = {}
        for channel in self.job.input_data_config or []:
            source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
            described = {
                "TrainingInputMode": channel.get("InputMode")
                or (self.job.algorithm_specification or {}).get("TrainingInputMode", "File"),
                "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                "RecordWrapperType": channel.get("RecordWrapperType", "None"),
            }
            if channel.get("ContentType"):
                described["ContentType"] = channel["ContentType"]
            data_config[channel["ChannelName"]] = described
        (config_dir / "inputdataconfig.json").write_text(json.dumps(data_config))
        instance_type = str((self.job.resource_config or {}).get("InstanceType", "local"))
        (config_dir / "resourceconfig.json").write_text(
            json.dumps(
                {
                    "current_host": _LOCAL_HOST,
                    "current_instance_type": instance_type,
                    "current_group_name": "homogeneousCluster",
                    "hosts": [_LOCAL_HOST],
                    "instance_groups": [
                        {
                            "instance_group_name": "homogeneousCluster",
                            "instance_type": instance_type,
                            "hosts": [_LOCAL_HOST],
                        }
                    ],
                    "network_interface_name": "eth0",
                }
            )
        )

    def _environment(self, image: images.ImageEnvironment, base_dir: Path, python: Path) -> dict[str, str]:
        """What a training container's process sees; nothing from this process's environment."""
        job = self.job
        env = {
            **images.at_root(image.container_environment, base_dir),
            **self.environment,
            "SAGEMAKER_BASE_DIR": str(base_dir),
            "PATH": images.container_path(python),
            "HOME": str(self.workdir / "home"),
            "TRAINING_JOB_NAME": job.training_job_name,
            "TRAINING_JOB_ARN": job.arn,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **role_credentials(job.role_arn, job.training_job_name, region=self.region).environment(),
        }
        if aws_state.endpoint_url():
            env["AWS_ENDPOINT_URL"] = aws_state.endpoint_url()
        return env

    def _metrics(self, text: str) -> list[dict[str, Any]]:
        found = []
        for definition in (self.job.algorithm_specification or {}).get("MetricDefinitions") or []:
            matches = re.findall(definition["Regex"], text)
            if matches:
                value = matches[-1][0] if isinstance(matches[-1], tuple) else matches[-1]
                found.append({"MetricName": definition["Name"], "Value": float(value), "Timestamp": aws_state.utcnow()})
        return found

    def _run(self) -> None:
        try:
            self._run_job()
        except DataTransferError as exc:
            self._finish("Failed", "Failed", "Training job failed", str(exc))
        except Exception as exc:
            self._finish("Failed", "Failed", "Training job failed", f"ClientError: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run_job(self) -> None:
        image = images.for_image(str((self.job.algorithm_specification or {}).get("TrainingImage", "")))
        image.require()
        base_dir = self.workdir / "opt-ml"
        for name in ("model", "output/data", "code"):
            (base_dir / name).mkdir(parents=True, exist_ok=True)
        (self.workdir / "home").mkdir()
        self._secondary("Downloading", "Downloading input data")
        self._emit()
        channels = self._download_channels(base_dir / "input")
        self._write_config(base_dir / "input" / "config", channels)
        python = image.overlay(self.workdir / "container-venv")
        env = self._environment(image, base_dir, python)
        if self.stop_requested.is_set():
            self._finish("Stopped", "Stopped", "Training job stopped")
            return
        self._secondary("Training", "Training image download completed. Training in progress.")
        self._emit()
        max_runtime = (self.job.stopping_condition or {}).get("MaxRuntimeInSeconds")
        # Its own process group: the toolkit runs the script as a child, and Stop or MaxRuntime ends both.
        self.process = subprocess.Popen(
            [str(python), "-m", "sagemaker_training.cli.train"],
            cwd=base_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = self.process.communicate(timeout=float(max_runtime) if max_runtime else None)
        except subprocess.TimeoutExpired:
            self._kill()
            output, _ = self.process.communicate()
            self.logs = output
            self._write_logs(self.logs)
            self._finish("Stopped", "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded")
            return
        self.logs = output
        self._write_logs(self.logs)
        if self.stop_requested.is_set():
            self._finish("Stopped", "Stopped", "Training job stopped")
            return
        if self.process.returncode != 0:
            failure_file = base_dir / "output" / "failure"
            message = failure_file.read_text().strip() if failure_file.is_file() else ""
            reason = f"AlgorithmError: {message or 'See job logs for more information'}"
            self._finish("Failed", "Failed", "Training job failed", reason[:_FAILURE_REASON_MAX])
            return
        self._secondary("Uploading", "Uploading generated training model")
        self._emit()
        prefix = f"{self.job.output_data_config['S3OutputPath'].rstrip('/')}/{self.job.training_job_name}/output"
        kms = self.job.output_data_config.get("KmsKeyId")
        s3 = s3_client_as(self.job.role_arn, self.job.training_job_name, region=self.region)
        _upload(s3, f"{prefix}/model.tar.gz", _tar_directory(base_dir / "model"), kms)
        _upload(s3, f"{prefix}/output.tar.gz", _tar_directory(base_dir / "output" / "data"), kms)
        self.job.model_artifacts = {"S3ModelArtifacts": f"{prefix}/model.tar.gz"}
        self.job.final_metric_data_list = self._metrics(self.logs) or None
        self._finish("Completed", "Completed", "Training job completed")

    def _kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def _write_logs(self, text: str) -> None:
        """The process output in CloudWatch Logs, where SageMaker puts a training container's."""
        stream = f"{self.job.training_job_name}/algo-1-{int(time.time())}"
        aws_state.put_log_lines(self.account_id, self.region, "/aws/sagemaker/TrainingJobs", stream, text.splitlines())

    def stop(self) -> None:
        self.stop_requested.set()
        self.job.training_job_status = "Stopping"
        self.job.secondary_status = "Stopping"
        self._kill()


def start_training(account_id: str, region: str, job: Any, params: dict[str, Any]) -> None:
    """Give moto's FakeTrainingJob the request's real fields back and start its process."""
    # moto replaces the caller's MetricDefinitions with a canned one and drops Environment.
    job.algorithm_specification = params.get("AlgorithmSpecification") or {}
    job.environment = dict(params.get("Environment") or {}) or None
    run = TrainingRun(account_id, region, job, dict(params.get("Environment") or {}))
    with _jobs_lock:
        _runs[job.arn] = run
    run.start()


def stop_training(job: Any) -> None:
    with _jobs_lock:
        run = _runs.get(job.arn)
    if run is not None and job.training_job_status == "InProgress":
        run.stop()


def wait_for_training(job_arn: str, timeout: float | None = None) -> None:
    """Block until a local training job's process has finished (tests and the CLI)."""
    with _jobs_lock:
        run = _runs.get(job_arn)
    if run is not None:
        run.thread.join(timeout)


def stop_all() -> None:
    with _jobs_lock:
        runs = list(_runs.values())
        _runs.clear()
    for run in runs:
        if run.thread.is_alive():
            run.stop()
            run.thread.join(timeout=10)

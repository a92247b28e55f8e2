"""SageMaker training jobs that really train: the script-mode entry point as a subprocess.

moto marks every training job Completed at once and runs nothing (notes/moto-5.2.5.md). Here
CreateTrainingJob prepares what the SageMaker training toolkit prepares inside the container and
runs the entry point as a real process:

- the source bundle (HyperParameters sagemaker_submit_directory, a tar.gz on S3) is extracted into
  the job's code directory and `sagemaker_program` runs from there (so a bundle holding training/,
  functions/shared/ and contracts/ at its root imports them as packages);
- every InputDataConfig channel is downloaded from S3 (S3Prefix or ManifestFile) into
  input/data/<channel> and named by SM_CHANNEL_<CHANNEL>;
- SM_MODEL_DIR, SM_OUTPUT_DATA_DIR, SM_OUTPUT_DIR, SM_HPS, SM_HP_<NAME>, SM_CHANNELS, SM_HOSTS,
  SM_CURRENT_HOST, SM_NUM_CPUS, SM_NUM_GPUS, SM_USER_ARGS and the job's Environment are set, and the
  hyperparameters (JSON-decoded, without the sagemaker_* ones) are passed as `--name value` arguments;
- on exit 0, model/ becomes model.tar.gz and output/data/ becomes output.tar.gz under
  S3OutputPath/<job>/output/; otherwise the job is Failed with the script's error as FailureReason
  (the text of output/failure if the script wrote one, else the tail of stderr).

describe_training_job shows InProgress (SecondaryStatus Starting, Downloading, Training, Uploading)
then Completed, Failed or Stopped, and each change is emitted as "SageMaker Training Job State Change".
The process output goes to CloudWatch Logs, group /aws/sagemaker/TrainingJobs, stream <job>/algo-1-<epoch>.
StopTrainingJob kills the process; MaxRuntimeInSeconds (not scaled: training time is real) stops it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mlloop.localcloud import aws_state

_jobs_lock = threading.Lock()
_runs: dict[str, TrainingRun] = {}
_STDERR_TAIL = 1500


def _hp_value(raw: Any) -> Any:
    """The SageMaker SDK JSON-encodes hyperparameter values ('"train.py"', '100'); plain strings pass through."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _cli_value(value: Any) -> str:
    """How sagemaker-training-toolkit renders a hyperparameter on the command line (mapping.to_cmd_args)."""
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def _env_value(value: Any) -> str:
    """How the toolkit renders a hyperparameter in SM_HP_<NAME> (mapping.to_env_vars)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def _tar_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


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
        channels = {}
        for channel in self.job.input_data_config or []:
            name = channel["ChannelName"]
            source = (channel.get("DataSource") or {}).get("S3DataSource") or {}
            target = input_dir / "data" / name
            target.mkdir(parents=True, exist_ok=True)
            uri = source.get("S3Uri", "")
            if source.get("S3DataType") == "ManifestFile":
                manifest = json.loads(aws_state.read_s3(self.account_id, uri))
                prefix = manifest[0]["prefix"]
                for relative in manifest[1:]:
                    self._fetch(prefix.rstrip("/") + "/" + relative, target / relative)
            else:
                bucket, key_prefix = aws_state.split_s3_uri(uri)
                keys = aws_state.list_s3(self.account_id, uri)
                if not keys:
                    raise FileNotFoundError(f"No S3 objects found under S3 URL {uri!r} given in input data source.")
                base = key_prefix if key_prefix.endswith("/") or key_prefix in keys else key_prefix.rsplit("/", 1)[0]
                for key in keys:
                    relative = key[len(base) :].lstrip("/") or key.rsplit("/", 1)[-1]
                    self._fetch(f"s3://{bucket}/{key}", target / relative)
            channels[name] = target
        return channels

    def _fetch(self, uri: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(aws_state.read_s3(self.account_id, uri))

    def _command(self, code_dir: Path, hyperparameters: dict[str, Any]) -> list[str]:
        program = hyperparameters.get("sagemaker_program")
        if not program:
            raise ValueError(
                "the local cloud runs script-mode jobs only: HyperParameters sagemaker_program and "
                "sagemaker_submit_directory are required"
            )
        args = [
            item
            for name, value in sorted(hyperparameters.items())
            if not name.startswith("sagemaker_")
            for item in (f"--{name}", _cli_value(value))
        ]
        if not (code_dir / str(program)).is_file():
            raise FileNotFoundError(f"sagemaker_program {program} is not in the source bundle")
        return [sys.executable, str(code_dir / str(program)), *args]

    def _environment(self, dirs: dict[str, Path], channels: dict[str, Path], hps: dict[str, Any]) -> dict[str, str]:
        user_hps = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
        env = {k: v for k, v in os.environ.items() if not k.startswith("SM_")}
        env.update(self.environment)
        resources = self.job.resource_config or {}
        env.update(
            {
                "SM_MODEL_DIR": str(dirs["model"]),
                "SM_OUTPUT_DATA_DIR": str(dirs["output_data"]),
                "SM_OUTPUT_DIR": str(dirs["output"]),
                "SM_INPUT_DIR": str(dirs["input"]),
                "SM_INPUT_CONFIG_DIR": str(dirs["input"] / "config"),
                "SM_MODULE_DIR": str(hps.get("sagemaker_submit_directory", "")),
                "SM_USER_ENTRY_POINT": str(hps.get("sagemaker_program", "")),
                "SM_CHANNELS": json.dumps(sorted(channels)),
                "SM_HPS": json.dumps(user_hps),
                "SM_USER_ARGS": json.dumps(self._command(dirs["code"], hps)[2:]),
                "SM_HOSTS": json.dumps(["algo-1"]),
                "SM_CURRENT_HOST": "algo-1",
                "SM_CURRENT_INSTANCE_TYPE": str(resources.get("InstanceType", "local")),
                "SM_NUM_CPUS": str(os.cpu_count() or 1),
                "SM_NUM_GPUS": "0",
                "SM_TRAINING_ENV": json.dumps({"job_name": self.job.training_job_name, "hyperparameters": user_hps}),
                "TRAINING_JOB_NAME": self.job.training_job_name,
                "TRAINING_JOB_ARN": self.job.arn,
                "PYTHONPATH": os.pathsep.join([str(dirs["code"]), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                "PYTHONUNBUFFERED": "1",
            }
        )
        for name, path in channels.items():
            env[f"SM_CHANNEL_{name.upper()}"] = str(path)
        for name, value in user_hps.items():
            env[f"SM_HP_{name.upper()}"] = _env_value(value)
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
        except Exception as exc:
            self._finish("Failed", "Failed", "Training job failed", f"ClientError: {type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _run_job(self) -> None:
        root = self.workdir
        dirs = {
            "input": root / "input",
            "model": root / "model",
            "output": root / "output",
            "output_data": root / "output" / "data",
            "code": root / "code",
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        hps = {k: _hp_value(v) for k, v in (self.job.hyper_parameters or {}).items()}
        (dirs["input"] / "config").mkdir(exist_ok=True)
        (dirs["input"] / "config" / "hyperparameters.json").write_text(json.dumps(self.job.hyper_parameters or {}))
        self._secondary("Downloading", "Downloading input data")
        self._emit()
        submit = str(hps.get("sagemaker_submit_directory", ""))
        if submit.startswith("s3://"):
            with tarfile.open(fileobj=io.BytesIO(aws_state.read_s3(self.account_id, submit)), mode="r:gz") as tar:
                tar.extractall(dirs["code"], filter="data")
        channels = self._download_channels(dirs["input"])
        command = self._command(dirs["code"], hps)
        env = self._environment(dirs, channels, hps)
        if self.stop_requested.is_set():
            self._finish("Stopped", "Stopped", "Training job stopped")
            return
        self._secondary("Training", "Training image download completed. Training in progress.")
        self._emit()
        max_runtime = (self.job.stopping_condition or {}).get("MaxRuntimeInSeconds")
        self.process = subprocess.Popen(
            command, cwd=dirs["code"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            stdout, stderr = self.process.communicate(timeout=float(max_runtime) if max_runtime else None)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            self._finish("Stopped", "MaxRuntimeExceeded", "Training job stopped: MaxRuntimeInSeconds exceeded")
            return
        self.logs = stdout + stderr
        self._write_logs(self.logs)
        if self.stop_requested.is_set():
            self._finish("Stopped", "Stopped", "Training job stopped")
            return
        if self.process.returncode != 0:
            failure_file = dirs["output"] / "failure"
            message = failure_file.read_text().strip() if failure_file.is_file() else stderr.strip()[-_STDERR_TAIL:]
            reason = (
                f"AlgorithmError: ExecuteUserScriptError:\nExitCode {self.process.returncode}\n"
                f'ErrorMessage "{message}"\nCommand "{" ".join(command[1:])}"'
            )
            self._finish("Failed", "Failed", "Training job failed", reason)
            return
        self._secondary("Uploading", "Uploading generated training model")
        self._emit()
        prefix = f"{self.job.output_data_config['S3OutputPath'].rstrip('/')}/{self.job.training_job_name}/output"
        kms = self.job.output_data_config.get("KmsKeyId")
        aws_state.write_s3(self.account_id, f"{prefix}/model.tar.gz", _tar_directory(dirs["model"]), kms_key_id=kms)
        aws_state.write_s3(
            self.account_id, f"{prefix}/output.tar.gz", _tar_directory(dirs["output_data"]), kms_key_id=kms
        )
        self.job.model_artifacts = {"S3ModelArtifacts": f"{prefix}/model.tar.gz"}
        self.job.final_metric_data_list = self._metrics(self.logs) or None
        self._finish("Completed", "Completed", "Training job completed")

    def _write_logs(self, text: str) -> None:
        """The process output in CloudWatch Logs, where SageMaker puts a training container's."""
        from moto.logs.models import logs_backends

        logs = logs_backends[self.account_id][self.region]
        group, stream = "/aws/sagemaker/TrainingJobs", f"{self.job.training_job_name}/algo-1-{int(time.time())}"
        if group not in logs.groups:
            logs.create_log_group(group, {})
        logs.create_log_stream(group, stream)
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line} for line in text.splitlines() if line.strip()]
        if events:
            logs.put_log_events(group, stream, events)

    def stop(self) -> None:
        self.stop_requested.set()
        self.job.training_job_status = "Stopping"
        self.job.secondary_status = "Stopping"
        if self.process is not None and self.process.poll() is None:
            self.process.kill()


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

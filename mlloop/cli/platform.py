"""Where a stage's resources are, found from the stage config and the account, through plain boto3.

The same code serves a real account and the embedded AWS: point it at the local cloud with
`--endpoint-url` (or AWS_ENDPOINT_URL, which boto3 reads itself).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3

from functions.shared.settings import MODEL_VARIABLE
from infra.config import StageConfig, load_stage_config
from infra.context import effective_context


class OperatorError(RuntimeError):
    """A refusal or a failure the operator must read: the message says what and why."""


@dataclass
class Platform:
    config: StageConfig
    session: boto3.session.Session
    endpoint_url: str | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_stage(
        cls, stage: str, *, model: str | None = None, endpoint_url: str | None = None, region: str | None = None
    ) -> Platform:
        """The platform of one model of `stage`; `model` may be left out when the stage has only one."""
        config = load_stage_config(effective_context(), stage, model)
        session = boto3.session.Session(region_name=region or os.environ.get("AWS_DEFAULT_REGION") or config.region)
        return cls(config=config, session=session, endpoint_url=endpoint_url)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    @cached_property
    def account(self) -> str:
        return str(self.client("sts").get_caller_identity()["Account"])

    @cached_property
    def actor(self) -> str:
        """Who is acting: the caller's ARN where the account says, else the local user."""
        try:
            return str(self.client("sts").get_caller_identity()["Arn"])
        except Exception:
            return getpass.getuser()

    @property
    def state_machine_arn(self) -> str:
        return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{self.config.prefix}-training"

    def bucket(self, kind: str) -> str:
        return f"{self.config.stage_prefix}-{kind}-{self.account}-{self.region}"

    def find_function(self, function_dir: str) -> str:
        """The deployed function of this model whose handler is `functions.<function_dir>.handler.handler`.

        Found by handler, stage and (beside other models) model rather than by name, so CDK-generated names need
        no convention.
        """
        handler = f"functions.{function_dir}.handler.handler"
        model = None if self.config.sole_model else self.config.model_name
        paginator = self.client("lambda").get_paginator("list_functions")
        for page in paginator.paginate():
            for fn in page["Functions"]:
                env = (fn.get("Environment") or {}).get("Variables") or {}
                if (
                    fn.get("Handler") == handler
                    and env.get("STAGE") == self.config.stage
                    and env.get(MODEL_VARIABLE) == model
                ):
                    return str(fn["FunctionName"])
        where = f"stage {self.config.stage}" + (f", model {model}" if model else "")
        raise OperatorError(f"no deployed function with handler {handler} in {where}")

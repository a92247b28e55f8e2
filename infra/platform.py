"""Compose one stage of the platform: every stack of that stage, wired together by typed references."""

from __future__ import annotations

from aws_cdk import App, Aspects, Environment, Stack, Tags

from infra.config import StageConfig
from infra.constructs.encrypted_logs import EncryptLogGroups
from infra.stacks.data_lake import DataLakeStack
from infra.stacks.monitoring import MonitoringStack
from infra.stacks.serving import ServingStack
from infra.stacks.training import TrainingStack


def build_stage(app: App, config: StageConfig) -> None:
    env = Environment(account=config.account, region=config.region) if config.account else None
    # Stacks plug in here in lifecycle order: data lake (stateful), training, serving, monitoring.
    lake = DataLakeStack(app, f"{config.prefix}-data-lake", config=config, env=env)
    training = TrainingStack(app, f"{config.prefix}-training", config=config, lake=lake, env=env)
    serving = ServingStack(app, f"{config.prefix}-serving", config=config, lake=lake, training=training, env=env)
    monitoring = MonitoringStack(
        app, f"{config.prefix}-monitoring", config=config, lake=lake, training=training, serving=serving, env=env
    )
    stacks: list[Stack] = [lake, training, serving, monitoring]
    for stack in stacks:
        Tags.of(stack).add("project", config.project)
        Tags.of(stack).add("stage", config.stage)
        Aspects.of(stack).add(EncryptLogGroups(lake.key))

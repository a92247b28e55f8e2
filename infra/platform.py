"""Compose one stage of the platform: every stack of that stage, wired together by typed references."""

from __future__ import annotations

from aws_cdk import App, Aspects, Environment, Stack, Tags

from infra.config import StageConfig
from infra.constructs.encrypted_logs import EncryptLogGroups
from infra.stacks.api import ApiStack
from infra.stacks.data_lake import DataLakeStack
from infra.stacks.monitoring import MonitoringStack
from infra.stacks.serving import ServingStack
from infra.stacks.training import TrainingStack


def build_stage(app: App, models: list[StageConfig]) -> None:
    """One shared data lake for the stage; per model its training, serving and monitoring stacks; beside other
    models, one API stack routing to each model's front door (docs/models.md).

    A model's stacks are named by `config.prefix`: `<project>-<stage>-training` for a stage's only model (the
    names a single-model stage always had), `<project>-<stage>-<model>-training` beside other models. A model
    removed from the config leaves its stacks behind for `cdk destroy`; its data stays in the lake.
    """
    shared = models[0].lake_view()
    env = Environment(account=shared.account, region=shared.region) if shared.account else None
    # Stacks plug in here in lifecycle order: data lake (stateful), training, serving, monitoring.
    lake = DataLakeStack(
        app, f"{shared.prefix}-data-lake", config=shared, datasets=[m.dataset for m in models], env=env
    )
    stacks: list[Stack] = [lake]
    servings: list[tuple[StageConfig, ServingStack]] = []
    for config in models:
        training = TrainingStack(app, f"{config.prefix}-training", config=config, lake=lake, env=env)
        serving = ServingStack(app, f"{config.prefix}-serving", config=config, lake=lake, training=training, env=env)
        monitoring = MonitoringStack(
            app, f"{config.prefix}-monitoring", config=config, lake=lake, training=training, serving=serving, env=env
        )
        stacks += [training, serving, monitoring]
        servings.append((config, serving))
    if len(models) > 1:
        # One API for the stage's models, each under /models/<model>/ (a sole model's API is in its serving stack).
        stacks.append(ApiStack(app, models[0].api_stack_name, config=shared, models=servings, env=env))
    for stack in stacks:
        Tags.of(stack).add("project", shared.project)
        Tags.of(stack).add("stage", shared.stage)
        Aspects.of(stack).add(EncryptLogGroups(lake.key))

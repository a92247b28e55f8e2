"""Compose one stage of the platform: every stack of that stage, wired together by typed references."""

from __future__ import annotations

from aws_cdk import App, Environment, Tags

from infra.config import StageConfig


def build_stage(app: App, config: StageConfig) -> None:
    env = Environment(account=config.account, region=config.region) if config.account else None
    # Stacks plug in here in lifecycle order: data lake (stateful), training, serving, monitoring.
    stacks: list = []
    for stack in stacks:
        Tags.of(stack).add("project", config.project)
        Tags.of(stack).add("stage", config.stage)
    _ = env

#!/usr/bin/env python3
"""CDK composition root: stage configs from context -> stacks; cdk-nag checks every synth."""

from __future__ import annotations

import sys

from aws_cdk import App
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import ConfigError, stage_configs_from_app
from infra.platform import build_stage


def main() -> None:
    app = App(policy_validation_beta1=[AwsSolutionsChecks(), ServerlessChecks()])
    try:
        configs = stage_configs_from_app(app)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(1)
    for config in configs:
        build_stage(app, config)
    app.synth()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""CDK composition root: stage configs from context -> stacks; cdk-nag checks every synth."""

from __future__ import annotations

import os
import sys

# These machines run Node 20; jsii's end-of-life banner would bury a one-line config error.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import ConfigError
from infra.context import stage_configs_from_app
from infra.platform import build_stage


def main() -> None:
    app = App()
    Validations.of(app).add_plugins(AwsSolutionsChecks(), ServerlessChecks())
    try:
        stages = stage_configs_from_app(app)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        sys.exit(1)
    for models in stages.values():
        build_stage(app, models)
    app.synth()


if __name__ == "__main__":
    main()

"""Every CloudWatch Logs log group of a stage encrypted with the stage's key: one aspect, applied per stack.

An aspect rather than a parameter on each log group: log groups come from PlatformFunction, the API's access
logs and every state machine, and one that is added later is covered without anyone remembering to pass the key.
The key's policy must let CloudWatch Logs use it (DataLakeStack.allow_log_encryption).
"""

from __future__ import annotations

import jsii
from aws_cdk import IAspect
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import IConstruct


@jsii.implements(IAspect)
class EncryptLogGroups:
    def __init__(self, key: kms.IKey) -> None:
        self.key = key

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, logs.CfnLogGroup) and node.kms_key_id is None:
            node.kms_key_id = self.key.key_arn

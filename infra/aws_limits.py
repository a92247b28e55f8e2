"""AWS account limits the stacks must fit in, shared by the synth-time checks and the local cloud that enforces them.

Lambda keeps a minimum of unreserved concurrency for the functions that reserve none: a reservation that would
leave less fails ("Specified ReservedConcurrentExecutions for function decreases account's
UnreservedConcurrentExecution below its minimum value of [10]."). "New AWS accounts have reduced concurrency and
memory quotas" (docs.aws.amazon.com/lambda/latest/dg/limits.html; the default of an established account is
1,000): a new account's quota can be 10, which leaves nothing to reserve.
"""

from __future__ import annotations

LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY = 10
LAMBDA_NEW_ACCOUNT_CONCURRENCY_QUOTA = 10

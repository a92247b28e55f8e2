from tests.integration.test_serving_loop import *  # noqa
from tests.integration.test_serving_loop import _register, _deploy_executions

def test_dbg(local_cloud, first_deploy):
    before = _deploy_executions(local_cloud)
    print("BEFORE", [(e["name"], e["status"]) for e in before])
    _register(local_cloud, broken=True)
    local_cloud.wait_idle()
    after = _deploy_executions(local_cloud)
    print("AFTER", [(e["name"], e["status"]) for e in after])
    print("FAILURES", local_cloud.delivery_failures)

import json, boto3
from mlloop.localcloud import LocalCloud, identity
with LocalCloud.start() as cloud:
    iam = cloud.client("iam"); cloud.client("s3").create_bucket(Bucket="bkt1")
    role = iam.create_role(RoleName="r1", AssumeRolePolicyDocument="{}")["Role"]
    iam.put_role_policy(RoleName="r1", PolicyName="p", PolicyDocument=json.dumps({"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}))
    c = identity.role_credentials(role["Arn"], "s", region="us-east-1")
    s3 = boto3.client("s3", endpoint_url=cloud.endpoint_url, region_name="us-east-1", aws_access_key_id=c.access_key_id, aws_secret_access_key=c.secret_access_key, aws_session_token=c.session_token)
    for kw in [dict(Key="a/event_date=2024-01-01/x.parquet"), dict(Key="a b+c.csv"), dict(Key="k", Metadata={"source-key": "raw/x y.csv", "rows": "3"}), dict(Key="k2", ContentType="application/vnd.apache.parquet"), dict(Key="k3", Metadata={"reason": "bad value: ü"})]:
        try: s3.put_object(Bucket="bkt1", Body=b"x"*10, **kw); print("ok", kw)
        except Exception as e: print("ERR", kw, e)

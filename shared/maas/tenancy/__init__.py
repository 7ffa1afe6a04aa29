"""Tenants: many teams sharing one maas deployment without reaching into each other's models.

- ``names``     tenant ids and the ``<tenant>--<model>`` registry names (the one place they are checked)
- ``plans``     a tenant's API Gateway usage plan (throttle, daily quota)
- ``keys``      API keys: ``maas_<key id>.<secret>``, only the sha256 of the secret is stored
- ``store``     the tenant store (TenantsBucket, S3 conditional writes) and its audit records
- ``authorizer`` the Lambda REQUEST authorizer's decision (functions/authorizer)
- ``gate``      the predict handler's one tenant check per request (404 for other tenants' models,
                per-tenant row limit and request rate)
- ``metering``  one usage record per request / file / message, Athena-ready in the audit bucket
- ``usage``     ``maas tenants usage``: aggregation and the documented price table

Why S3 and not DynamoDB: the store needs conditional writes and point reads only, which S3 gives
(``If-None-Match: *`` to create, ``If-Match: <etag>`` to update); and LocalStack community cannot run
DynamoDB on these machines (it downloads DynamoDB Local at first use, whose licence and network access
rule it out), so a DynamoDB store could not be tested end to end here.
"""

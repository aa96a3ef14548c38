"""S3: objects are private, and the app hands out presigned URLs that live STUDIO_PRESIGNED_URL_SECONDS only."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from studio import settings
from tests.support.security import login, png_bytes

pytestmark = pytest.mark.integration
LIFETIME = 120


def test_presigned_urls_live_300_seconds_unless_configured():
    assert settings.from_environment({})["STUDIO_PRESIGNED_URL_SECONDS"] == 300
    assert settings.from_environment({"STUDIO_PRESIGNED_URL_SECONDS": "45"})["STUDIO_PRESIGNED_URL_SECONDS"] == 45


@pytest.fixture
def bucket_app(security_app, s3_endpoint):
    """Return an app storing files in a fresh private bucket on the moto server, URLs valid for LIFETIME seconds."""
    bucket = f"security-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return security_app(STUDIO_S3_BUCKET=bucket, STUDIO_S3_ENDPOINT_URL=s3_endpoint, STUDIO_S3_REGION="us-east-1",
                        STUDIO_S3_PREFIX="studio", STUDIO_PRESIGNED_URL_SECONDS=LIFETIME)


@pytest.fixture
def app(bucket_app):
    """Make the S3 app the one the account and task fixtures use."""
    return bucket_app


def fetch(url: str) -> tuple[int, bytes]:
    """GET a URL the way a browser or curl would, with no AWS credentials; return (status, body)."""
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_results_and_photos_are_served_only_through_short_lived_signed_urls(
        bucket_app, make_user, make_token, make_stored_task):
    app = bucket_app
    user = make_user("ada@example.com")
    task_id = make_stored_task(user.id)
    client = app.test_client()
    assert login(client, "ada@example.com").status_code == 302
    redirects = [
        app.test_client().get(f"/api/v1/tasks/{task_id}/result", headers=make_token(user)),
        client.get(f"/tasks/{task_id}/result?download=1"),
        client.get(f"/tasks/{task_id}/input"),
    ]
    for response in redirects:
        assert response.status_code == 302
        assert response.headers["Cache-Control"] == "private, no-store"
        url = response.headers["Location"]
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Expires"] == [str(LIFETIME)]
        assert query["X-Amz-Signature"] and query["X-Amz-Credential"]
        assert fetch(url) == (200, png_bytes())
        # The same object without the signature is refused. (moto does not check that the signature covers the
        # query, so a stretched X-Amz-Expires cannot be tested here; real S3 and MinIO refuse it.)
        assert fetch(url.split("?", 1)[0])[0] == 403


def test_stored_objects_are_private_to_the_bucket_owner(bucket_app, make_user, make_stored_task):
    app = bucket_app
    task_id = make_stored_task(make_user().id)
    endpoint, bucket = app.config["STUDIO_S3_ENDPOINT_URL"], app.config["STUDIO_S3_BUCKET"]
    owner = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    keys = [item["Key"] for item in owner.list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 4 and all(task_id in key for key in keys)  # the photo, result, preview and thumbnail
    anonymous = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                             config=Config(signature_version=UNSIGNED))
    for key in keys:
        grants = owner.get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert [(grant["Grantee"]["Type"], grant["Permission"]) for grant in grants] == \
            [("CanonicalUser", "FULL_CONTROL")], key
        with pytest.raises(ClientError) as refused:
            anonymous.get_object(Bucket=bucket, Key=key)
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert fetch(f"{endpoint}/{bucket}/{key}")[0] == 403

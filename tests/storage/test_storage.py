"""Storage backends: local disk (keys confined to the root) and S3 through moto's server (private objects)."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid

import boto3
import pytest

from studio.storage import LocalStorage, ObjectNotFound, S3Storage, check_key, input_key, result_key


@pytest.mark.parametrize("key", ["../secret", "inputs/../../etc/passwd", "/etc/passwd", "inputs//x", "", ".",
                                 "inputs/./x", "a\\b", "inputs/x\x00.jpg", "~/x"])
def test_keys_that_could_escape_are_refused(tmp_path, key):
    storage = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError):
        storage.put(key, b"x", "image/png")
    with pytest.raises(ValueError):
        check_key(key)


def test_local_storage_round_trip(tmp_path):
    storage = LocalStorage(tmp_path)
    key = input_key(7, "abc", ".jpg")
    assert key == "inputs/7/abc.jpg" and result_key(7, "abc", ".png") == "results/7/abc.png"
    assert not storage.exists(key)
    storage.put(key, b"photo", "image/jpeg")
    storage.put(key, b"photo 2", "image/jpeg")
    assert storage.exists(key) and storage.get(key) == b"photo 2"
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == ["abc.jpg"]  # no temp files
    storage.copy(key, "inputs/7/copy.jpg", "image/jpeg")
    assert storage.get("inputs/7/copy.jpg") == b"photo 2"
    assert storage.presigned_url(key, filename="a.jpg", content_type="image/jpeg") is None
    storage.delete(key)
    storage.delete(key)
    assert not storage.exists(key)
    with pytest.raises(ObjectNotFound):
        storage.get(key)


def test_local_storage_refuses_a_symlink_out_of_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "inputs").symlink_to(outside)
    with pytest.raises(ValueError):
        LocalStorage(root).put("inputs/x.jpg", b"x", "image/jpeg")


@pytest.mark.integration
def test_s3_storage_objects_are_private_and_presigned_urls_work(s3_endpoint):
    bucket = f"storage-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    storage = S3Storage(bucket, prefix="/studio/", endpoint_url=s3_endpoint, region="us-east-1")
    key = result_key(3, "task", ".png")
    storage.put(key, b"\x89PNG data", "image/png")
    assert [item["Key"] for item in client.list_objects_v2(Bucket=bucket)["Contents"]] == [f"studio/{key}"]
    grants = client.get_object_acl(Bucket=bucket, Key=f"studio/{key}")["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert all(grant["Grantee"]["Type"] == "CanonicalUser" for grant in grants)
    assert storage.exists(key) and storage.get(key) == b"\x89PNG data"
    assert not storage.exists("results/3/other.png")
    with pytest.raises(ObjectNotFound):
        storage.get("results/3/other.png")
    with pytest.raises(ObjectNotFound):
        storage.copy("results/3/other.png", "results/3/copy.png", "image/png")
    storage.copy(key, "results/3/copy.png", "image/png")
    assert storage.get("results/3/copy.png") == b"\x89PNG data"

    url = storage.presigned_url(key, filename="holiday.png", content_type="image/png", expires=60)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"\x89PNG data"
        assert response.headers["Content-Type"] == "image/png"
        assert response.headers["Content-Disposition"] == 'attachment; filename="holiday.png"'
    unsigned = url.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(unsigned)
    assert refused.value.code == 403

    storage.delete(key)
    assert not storage.exists(key)


def test_presigned_urls_are_made_for_the_public_endpoint(s3_endpoint):
    bucket = f"public-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    public = s3_endpoint.replace("127.0.0.1", "localhost")
    storage = S3Storage(bucket, region="us-east-1", endpoint_url=s3_endpoint, public_endpoint_url=public)
    storage.put("results/1/x.png", b"picture", "image/png")
    url = storage.presigned_url("results/1/x.png", filename="x.png", content_type="image/png")
    assert url.startswith(public + "/") and "X-Amz-Expires=300" in url
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"picture"

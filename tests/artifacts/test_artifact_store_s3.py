"""What only the S3 store has: a server that is down, credentials it refuses, a missing
bucket, and a prefix shared with other objects, against a real S3-compatible server."""

from __future__ import annotations

import traceback

import botocore.exceptions
import msgspec
import pytest
from test_artifact_store_contract import PNG, s3_settings

from artifacts.errors import StoreRejected, StoreUnavailable
from artifacts.s3 import S3ArtifactStore
from artifacts.settings import S3Settings
from services import S3Server


def _everything_said(error: BaseException) -> str:
    """The message of `error` and of every exception chained to it, with the traceback."""
    return "".join(traceback.format_exception(error))


async def test_a_stopped_server_gives_a_retriable_error_without_the_secret() -> None:
    """Every call to a server that is gone raises StoreUnavailable (retriable), and nothing
    said about it, chained causes included, holds the secret key."""
    with S3Server() as server:
        server.create_bucket("gone-bucket")
        store = S3ArtifactStore(s3_settings(server, "gone-bucket"))
        ref = await store.put(PNG, "image/png")
        secret = server.secret_access_key
    calls = [
        store.put(PNG, "image/png"),
        store.get(ref.id),
        store.ref(ref.id),
        store.exists(ref.id),
        store.delete(ref.id),
        store.collect_garbage(0.0),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as raised:
            await call
        assert raised.value.retriable
        assert secret not in _everything_said(raised.value)


async def test_a_wrong_secret_is_refused_without_being_shown(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """A secret the server does not accept gives StoreRejected (not retriable), and the
    secret appears in no message."""
    wrong = "wrong-" + s3_server.secret_access_key[::-1]
    settings = msgspec.structs.replace(s3_settings(s3_server, s3_bucket), secret_access_key=wrong)
    with pytest.raises(StoreRejected) as raised:
        await S3ArtifactStore(settings).put(PNG, "image/png")
    assert not raised.value.retriable
    assert wrong not in _everything_said(raised.value)


async def test_a_missing_bucket_is_a_configuration_error(s3_server: S3Server) -> None:
    """A bucket that does not exist is refused (StoreRejected), naming the bucket."""
    store = S3ArtifactStore(s3_settings(s3_server, "no-such-bucket"))
    with pytest.raises(StoreRejected, match="no-such-bucket"):
        await store.put(PNG, "image/png")


async def test_two_prefixes_share_a_bucket_without_seeing_each_other(
    s3_server: S3Server, s3_bucket: str
) -> None:
    """Stores on different prefixes of one bucket hold their own artifacts, and one's
    garbage collection leaves the other's alone."""
    base = s3_settings(s3_server, s3_bucket)
    ours = S3ArtifactStore(msgspec.structs.replace(base, prefix="ours/"))
    theirs = S3ArtifactStore(msgspec.structs.replace(base, prefix="theirs/"))
    ref = await theirs.put(PNG, "image/png")
    assert not await ours.exists(ref.id)
    assert await ours.collect_garbage(0.0, now=2**40) == 0
    assert await theirs.exists(ref.id)


def _client_error(status: int, code: str) -> botocore.exceptions.ClientError:
    response = {
        "Error": {"Code": code, "Message": "server text"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return botocore.exceptions.ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (_client_error(500, "InternalError"), StoreUnavailable),
        (_client_error(503, "SlowDown"), StoreUnavailable),
        (_client_error(400, "RequestTimeout"), StoreUnavailable),
        (_client_error(429, "TooManyRequests"), StoreUnavailable),
        (_client_error(403, "AccessDenied"), StoreRejected),
        (_client_error(404, "NoSuchBucket"), StoreRejected),
        (
            botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.invalid"),
            StoreUnavailable,
        ),
        (
            botocore.exceptions.ConnectTimeoutError(endpoint_url="http://s3.invalid"),
            StoreUnavailable,
        ),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3.invalid"), StoreUnavailable),
        (botocore.exceptions.NoCredentialsError(), StoreRejected),
        (botocore.exceptions.ParamValidationError(report="bad"), StoreRejected),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else value.__name__,
)
def test_each_botocore_failure_becomes_a_store_error(
    raised: Exception, expected: type[Exception]
) -> None:
    """Raised inside the translation point, each botocore failure leaves as the store error
    of its kind, naming the bucket and never the server's own message."""
    store = S3ArtifactStore(S3Settings(bucket="mapped-bucket", endpoint_url="http://s3.invalid"))
    with pytest.raises(expected) as translated, store._translated("put"):
        raise raised
    assert "mapped-bucket" in str(translated.value)
    assert "server text" not in str(translated.value)

"""The S3-compatible server launcher (versitygw): it serves S3 with its own credentials, keeps
its data in its own directory, stops without trace, dies with the process that started it,
and says how to build it when it is missing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session
import pytest
from services_support import gone, server_of_killed_launcher

from services import S3Server, ServiceNotInstalled, versitygw_binary


def _client(server: S3Server, secret: str | None = None) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name=server.region,
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=secret or server.secret_access_key,
        config=botocore.config.Config(s3={"addressing_style": "path"}),
    )


def test_the_server_stores_objects_and_stops_without_trace() -> None:
    """Objects put into a bucket come back; stop() ends the process and removes its data."""
    with S3Server() as server:
        pid = server._process.pid  # type: ignore[union-attr]
        workdir = Path(server._tmp.name)  # type: ignore[union-attr]
        server.create_bucket("launcher-bucket")
        s3 = _client(server)
        s3.put_object(Bucket="launcher-bucket", Key="a/b", Body=b"bytes")
        got = s3.get_object(Bucket="launcher-bucket", Key="a/b")
        assert got["Body"].read() == b"bytes"
    assert gone(pid)
    assert not workdir.exists()


def test_a_wrong_secret_is_refused(s3_server: S3Server, s3_bucket: str) -> None:
    """The server checks signatures: a client with another secret is refused."""
    s3 = _client(s3_server, secret="not-the-server-secret-at-all")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.head_bucket(Bucket=s3_bucket)


def test_the_credentials_are_not_on_the_command_line(s3_server: S3Server) -> None:
    """The secret reaches the server through its environment, never its argv."""
    pid = s3_server._process.pid  # type: ignore[union-attr]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert s3_server.secret_access_key.encode() not in argv


def test_the_server_dies_with_the_process_that_started_it() -> None:
    """SIGKILL of the launching process (no finaliser runs) still ends versitygw."""
    assert gone(server_of_killed_launcher("S3Server"))


def test_a_missing_binary_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a built versitygw in the cache, the launcher names ./dev rather than failing
    obscurely."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(ServiceNotInstalled, match=r"\./dev"):
        versitygw_binary()


def test_a_bucket_name_s3_would_refuse_is_refused(s3_server: S3Server) -> None:
    """create_bucket takes S3 bucket names only, so no path escapes the server's root."""
    with pytest.raises(ValueError, match="bucket"):
        s3_server.create_bucket("../outside")

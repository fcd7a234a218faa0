"""A local S3-compatible server (moto) on 127.0.0.1 for the S3 blob store tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import httpx

from support import free_port, wait_for

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen

    def env(self, bucket: str, prefix: str = "vidgate") -> dict[str, str]:
        return {**CREDENTIALS, "VIDGATE_BLOB_URL": f"s3://{bucket}/{prefix}",
                "VIDGATE_S3_ENDPOINT_URL": self.endpoint}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def start_s3() -> S3Server:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError("moto server exited")
        try:
            return httpx.get(endpoint + "/moto-api/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, what="the S3 server to start")
    return S3Server(endpoint, proc)

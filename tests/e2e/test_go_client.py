"""A Go client built from Debian's packages (Go 1.19, grpc-go 1.33, GOPATH mode) against spoold.

The stubs are generated at test time with clients/go/buf.gen.yaml; the test skips, saying why,
where Go or its protobuf plugins are not installed (.ci/run installs them with apt).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from spool.v1 import job_pb2
from spool.v1 import queue_service_pb2 as qs
from spool.v1.queue_service_pb2_grpc import QueueServiceStub

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_GOPATH = Path("/usr/share/gocode")
TOOLS = ("go", "protoc-gen-go", "protoc-gen-go-grpc")


@pytest.fixture(scope="session")
def go_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing or not (DEBIAN_GOPATH / "src" / "google.golang.org" / "grpc").is_dir():
        pytest.skip(f"Go client toolchain not installed ({', '.join(missing) or 'golang-google-grpc-dev'})")
    gopath = tmp_path_factory.mktemp("gopath")
    buf = ROOT / ".venv" / "bin" / "buf"
    subprocess.run(
        [str(buf), "generate", "--template", "clients/go/buf.gen.yaml", "-o", str(gopath)], check=True, cwd=ROOT
    )
    shutil.copytree(ROOT / "clients" / "go" / "src" / "spoolexample", gopath / "src" / "spoolexample")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:{DEBIAN_GOPATH}",
        "GOPROXY": "off",
        "GOCACHE": os.environ.get("GOCACHE", str(tmp_path_factory.mktemp("gocache"))),
    }
    binary = gopath / "bin" / "spoolexample"
    subprocess.run(["go", "build", "-o", str(binary), "spoolexample"], check=True, env=env, cwd=gopath)
    return binary


async def test_a_go_client_produces_works_and_reads_a_job(
    go_example: Path, address: str, stub: QueueServiceStub
) -> None:
    proc = await asyncio.create_subprocess_exec(str(go_example), address, "go-queue", stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out
    steps = {line["step"]: line for line in map(json.loads, out.decode().splitlines())}

    assert json.loads(steps["leased"]["payload"]) == {"from": "go"}
    assert steps["acked"] == {"step": "acked", "state": "STATE_SUCCEEDED", "attempts": 1}
    assert steps["stale-ack"]["code"] == "FailedPrecondition" and steps["stale-ack"]["reason"] == "LEASE_LOST"
    job = (await stub.GetJob(qs.GetJobRequest(job_id=steps["enqueued"]["id"]))).job
    assert job.state == job_pb2.Job.STATE_SUCCEEDED
    assert json.loads(job.result) == {"by": "go"}
    assert json.loads(job.checkpoint) == {"step": 1}
    assert job.attempts[0].worker_id == "go-example"

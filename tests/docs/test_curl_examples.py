"""Every `buf curl` and `curl` example in docs/curl.md, docs/http.md and the README, run in order
against a fresh spoold, and every answer the docs quote checked against what the server says, so that
the quotes cannot drift.

A quoted answer is the `# {...}` comment after a command. `...` stands for anything: `"key": "..."`
for a value, `, ...` or `{...}` for more fields. `(exit status N)` is the command's exit status.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from spoold.app import App
from spoold.config import Settings
from tests.http.conftest import CURL, http_settings

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".venv" / "bin" / "buf"
ANY = "\x00any"
# Times and measured durations differ from run to run: a quoted one stands for any of its kind.
TIME = "\x00time"
DURATION = "\x00duration"
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_DURATION = re.compile(r"\d+(\.\d+)?s")


@dataclass
class Step:
    """Commands, and the answer the doc quotes for the last of them (None: it only has to succeed)."""

    script: str
    expected: str | None
    line: int


def steps(markdown: str) -> list[Step]:
    found: list[Step] = []
    for block in re.finditer(r"```sh\n(.*?)```", markdown, re.S):
        first = markdown[: block.start()].count("\n") + 2
        script: list[str] = []
        quoted: list[str] = []
        for n, line in enumerate(block.group(1).splitlines()):
            if line.startswith("# {") or (quoted and line.startswith("#  ")):
                quoted.append(line[1:].strip())
                continue
            if quoted:
                found.append(Step("\n".join(script), " ".join(quoted), first + n))
                script, quoted = [], []
            script.append(line)
        if script or quoted:
            found.append(Step("\n".join(script), " ".join(quoted) or None, first))
    return [s for s in found if s.script.strip()]


def pattern(quoted: str) -> tuple[Any, int]:
    """The quoted answer as JSON with wildcards, and the exit status it states."""
    status = 0
    m = re.search(r"\(exit status (\d+)\)\s*$", quoted)
    if m:
        status, quoted = int(m.group(1)), quoted[: m.start()]
    text = quoted.replace('"..."', json.dumps(ANY))
    text = re.sub(r'"\d{4}-\d\d-\d\dT[^"]*Z"', lambda _: json.dumps(TIME), text)
    text = re.sub(r'"duration": "\d+\.\d+s"', lambda _: f'"duration": {json.dumps(DURATION)}', text)
    text = re.sub(r"\{\s*\.\.\.\s*\}", "{}", text)
    text = re.sub(r",\s*\.\.\.", "", text)
    return json.loads(text), status


def documents(text: str) -> list[Any]:
    decoder, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = decoder.raw_decode(text, i)
        docs.append(doc)


def matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return True
    if expected in (TIME, DURATION):
        return isinstance(actual, str) and bool((_TIME if expected == TIME else _DURATION).fullmatch(actual))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(matches, expected, actual))
    return bool(expected == actual)


async def bash(script: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


_DEFINITION = re.compile(r"^(B|S|H)=|^b64\(\)")


async def replay(app: App, markdown: str) -> None:
    markdown = markdown.replace("127.0.0.1:50051", f"127.0.0.1:{app.port}")
    markdown = markdown.replace("127.0.0.1:8080", f"127.0.0.1:{app.http_port}")
    prelude: list[str] = []
    for step in steps(markdown):
        if "go build" in step.script or "apt-get" in step.script:
            continue  # the Go walk-through: tests/e2e/test_go_client.py builds and runs it
        lines = step.script.splitlines()
        prelude += [ln for ln in lines if _DEFINITION.match(ln)]
        script = "\n".join(["set -e", *prelude, *(ln for ln in lines if not _DEFINITION.match(ln))])
        code, out, err = await bash(script)
        if step.expected is None:
            assert code == 0, f"line {step.line}: exit {code}\n{step.script}\n{err}"
            continue
        want, status = pattern(step.expected)
        got = documents(out if status == 0 else err)
        assert code == status, f"line {step.line}: exit {code}, the doc says {status}\n{err}"
        assert got and matches(want, got[-1]), (
            f"line {step.line}: the doc quotes\n  {step.expected}\nbut the server answered\n  {json.dumps(got[-1:])}"
        )


@pytest.fixture
def settings() -> Settings:
    return http_settings()  # the README and docs/http.md call the HTTP port too


@pytest.mark.skipif(not BUF.exists(), reason="buf is installed into .venv by make install")
@pytest.mark.skipif(CURL is None, reason="curl is not installed (.ci/run installs it)")
@pytest.mark.parametrize("doc", ["docs/curl.md", "README.md", "docs/http.md"])
async def test_the_quoted_answers_are_what_the_server_says(app: App, doc: str) -> None:
    markdown = (ROOT / doc).read_text()
    if doc == "README.md":
        markdown = markdown[markdown.index("## A first call") : markdown.index("## From Python")]
    await replay(app, markdown)

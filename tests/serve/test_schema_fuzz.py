"""The explorer's API fuzzed from its own OpenAPI schema: Schemathesis generates requests for every
operation against a real `vaekit serve` of two runs, and every answer must be a documented status with
a body of its documented schema, never a 5xx; the server answers normally afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.serve.conftest import serving

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_fuzzed_requests_get_documented_answers_and_no_server_error(run, tmp_path):
    with serving(run, run) as url:
        done = subprocess.run(
            [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "--checks",
             "not_a_server_error,response_schema_conformance,status_code_conformance",
             "--max-examples", "25", "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )  # fmt: skip
        summary = done.stdout[-3000:]
        assert done.returncode == 0, summary
        cases = re.search(r"(\d+) generated, (\d+) passed", summary)
        assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 200, summary
        assert "Tested: 11" in summary  # every operation
        assert httpx.get(url + "/api/info").status_code == 200

"""benchmarks/gpu.py, the one call a GPU session runs, on this CPU: its parts run and write their figures
(the CUDA-graph loop and the figures themselves are the GPU's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def test_the_gpu_benchmark_runs_its_parts_on_a_cpu(shared_mnist, tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--only", "mlp",
         "--data-dir", str(shared_mnist), "--results-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu-check-cpu.json").read_text())
    mlp = results["parts"]["mlp"]
    assert "error" not in mlp, mlp
    assert set(mlp["epoch_seconds"]) == {"vaekit eager", "vaekit compiled", "bare eager"}
    assert mlp["images"] == 10_800 and all(s > 0 for s in mlp["epoch_seconds"].values())
    assert results["goals"]["mlp_epoch_seconds"] == 0.05

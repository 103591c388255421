"""The benchmark scripts run on a tiny budget, so they never rot.  They assert
nothing about time: that is what the scripts report, not what tests check."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_bench_smoke(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "bench.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "bench-smoke.md").read_text()
    assert "| 32 | " in table and "digitnet" in table
    assert "Whole run" in table and "Prediction" in table and "floor" in table
    assert (tmp_path / "bench-smoke.png").read_bytes()[:4] == b"\x89PNG"


def test_load_smoke(trained, tmp_path):
    _, model = trained
    out = tmp_path / "load.md"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "load.py"),
            "--model",
            str(model),
            "--requests",
            "40",
            "--concurrency",
            "1,3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [
        line
        for line in out.read_text().splitlines()
        if line.startswith("| canvas") or line.startswith("| 784")
    ]
    assert len(rows) == 4
    assert all(line.rstrip(" |").endswith("| 0") for line in rows)  # no errors


def test_hands_smoke(trained, tmp_path):
    _, model = trained
    out = tmp_path / "hands.md"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "hands.py"), str(model), str(model), "--names", "a,b",
         "--count", "1", "--most", "10", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines()
            if line.startswith("| ") and "---" not in line}  # fmt: skip
    assert set(rows) >= {"MNIST test", "canvas", "thick", "photo", "other writers", "set"}
    cells = rows["canvas"].strip(" |").split("|")
    assert cells[1].strip() == "10" and cells[2].strip() == cells[3].strip()  # one model twice

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


def test_class_load_smoke(trained, tmp_path):
    _, model = trained
    out = tmp_path / "class.md"
    command = [sys.executable, str(BENCHMARKS / "class_load.py"), "--model", str(model)]
    tiny = ["--students", "2", "--seconds", "0.3", "--drawings", "1", "--trainers", "0"]
    result = subprocess.run(
        [*command, *tiny, "--repeat", "2", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = out.read_text()
    assert "cores" in text and "load average" in text  # the machine it ran on
    rows = [line.split("|")[1:-1] for line in text.splitlines() if line.startswith("| grey")
            or line.startswith("| png")]  # fmt: skip
    sizes = [(r[0].strip(), r[1].strip()) for r in rows if len(r) == 9]
    assert sizes == [("grey", "2"), ("png", "2")]
    assert all(r[5].strip() == "0" for r in rows if len(r) == 9)  # no errors
    assert all(float(r[2]) > 0 for r in rows if len(r) == 9)  # answers came back
    assert text.count("Largest class with p99 < 100 ms") == 2
    costs = [r for r in rows if len(r) == 8]  # sends, body, request, decode, ..., in all
    assert [r[0].strip() for r in costs] == ["png", "grey"]
    assert all(float(v) >= 0 for r in costs for v in r[1:])


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

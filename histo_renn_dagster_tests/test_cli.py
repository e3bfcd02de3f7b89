"""The `histo-renn` console script as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import requests

SCRIPT = str(Path(sys.executable).with_name("histo-renn"))


def test_gdc_emulator_prints_url_first_and_serves_until_stopped(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            SCRIPT,
            "gdc-emulator",
            "--port",
            "0",
            "--cohort",
            "fixture",
            "--cache-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        status = requests.get(f"{url}/status", timeout=10).json()
        assert status["status"] == "OK" and "data_release" in status
        hits = requests.post(f"{url}/files", json={"size": 1}, timeout=10).json()
        assert hits["data"]["pagination"]["total"] > 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode in (0, -signal.SIGTERM)


def test_gdc_emulator_with_faults_flag(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            SCRIPT,
            "gdc-emulator",
            "--cohort",
            "fixture",
            "--cache-dir",
            str(tmp_path),
            "--faults",
            "500@/status*1",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        first = requests.get(f"{url}/status", timeout=10)
        second = requests.get(f"{url}/status", timeout=10)
        assert first.status_code == 500 and "message" in first.json()
        assert second.status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def test_unknown_cohort_is_a_clear_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [SCRIPT, "gdc-emulator", "--cohort", "nope", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "nope" in out.stderr and "fixture" in out.stderr
    assert out.stdout == ""


def test_help_lists_commands() -> None:
    out = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("gdc-emulator", "demo"):
        assert command in out.stdout

"""Helpers shared by the benchmark reports (bench/run.sh, bench/ingest.sh)."""

import subprocess


def sh(cmd):
    """A shell command's stripped stdout, or None if it fails or prints nothing."""
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None


def gnu_time(path):
    """Peak RSS, CPU and wall clock from a GNU `time -v` output file."""
    fields = {}
    for line in open(path):
        if ": " in line:
            k, v = line.strip().rsplit(": ", 1)
            fields[k] = v
    return {
        "peak_rss_kib": int(fields["Maximum resident set size (kbytes)"]),
        "user_s": float(fields["User time (seconds)"]),
        "sys_s": float(fields["System time (seconds)"]),
        "cpu_percent": int(fields["Percent of CPU this job got"].rstrip("%") or 0),
        "gnu_time_wall": fields["Elapsed (wall clock) time (h:mm:ss or m:ss)"],
    }

#!/usr/bin/env python
"""C-STORE ingest benchmark: this PACS's runscp versus Orthanc, same data, same machine.

Generates 500 CT-like 512x512 16-bit instances (~262 MB) once, then for each
server sends them with DCMTK ``storescu`` over one association and over four
parallel associations, printing instances/s, MB/s and the server's peak RSS.

    .venv/bin/python bench/bench_store.py [--count 500] [--no-orthanc] [--processes N] [--sync full|file]
                                          [--rounds 3]

Servers alternate within each round and the table shows the median round:
on a shared virtual disk the flush latency drifts by 2x within minutes.

Both DCMTK and Orthanc get ``TCP_NODELAY=1`` (otherwise every DIMSE message
waits ~40 ms for a delayed ACK).  Everything runs on loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
ENV = {**os.environ, "TCP_NODELAY": "1"}


def generate(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.dcm"))
    if len(existing) == count:
        return existing
    for path in existing:
        path.unlink()
    study, series = generate_uid(), generate_uid()
    rng = np.random.default_rng(7)
    base = rng.integers(0, 4096, size=(512, 512), dtype=np.uint16)
    paths = []
    for i in range(count):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = "BENCH1", "BENCH^CT", "19700101", "O"
        ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20261121", "120000", "BENCH"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, i + 1
        ds.StudyDescription, ds.SeriesDescription = "BENCH CT", "AXIAL 1MM"
        ds.ImagePositionPatient = [0, 0, float(i)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 512
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
        ds.PixelData = np.roll(base, i, axis=0).tobytes()
        path = folder / f"CT{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_echo(port: int, aet: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(["echoscu", "-aec", aet, "127.0.0.1", str(port)], env=ENV, capture_output=True)
        if result.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{aet} on port {port} did not answer C-ECHO")


def wait_listeners(port: int, count: int, timeout: float = 60) -> None:
    """Wait until *count* processes hold the socket listening on *port* (runscp's workers share it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout
        if len(set(re.findall(r"pid=(\d+)", out))) >= count:
            time.sleep(0.5)  # a worker holding the socket starts accepting from it right after
            return
        time.sleep(0.2)
    raise RuntimeError(f"fewer than {count} processes listen on port {port}")


def fresh(work: Path) -> None:
    """An empty work folder on a quiet disk: the previous run's deletes (online discard) settle first."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.sync()
    time.sleep(3)


def peak_rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def send(port: int, aet: str, folders: list[Path]) -> float:
    """storescu one association per folder, all in parallel; return seconds."""
    start = time.perf_counter()
    procs = [
        subprocess.Popen(["storescu", "-aec", aet, "+sd", "127.0.0.1", str(port), str(folder)], env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for folder in folders
    ]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"storescu failed: {err.decode()[-500:]}")
    return time.perf_counter() - start


def split(paths: list[Path], parts: int, base: Path) -> list[Path]:
    folders = []
    for index in range(parts):
        folder = base / f"part{index}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for path in paths[index::parts]:
            os.link(path, folder / path.name)
        folders.append(folder)
    return folders


class OurServer:
    name = "this PACS (runscp)"
    aet = "STORESCP"

    def __init__(self, work: Path, processes: int, sync: str = "full") -> None:
        self.work, self.processes, self.sync = work, processes, sync
        self.name = f"this PACS (runscp --workers {processes}" + (f", PACS_SYNC={sync})" if sync != "full" else ")")

    def __enter__(self):
        fresh(self.work)
        env = {**ENV, "PACS_DATA_DIR": str(self.work), "PACS_MIN_FREE_MB": "100", "PACS_SYNC": self.sync,
               "DATABASE_URL": ""}
        py = str(ROOT / ".venv" / "bin" / "python")
        subprocess.run([py, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
        self.port = free_port()
        # As `make run` starts it: one runscp, --workers processes sharing the port.
        args = [py, "manage.py", "runscp", "--bind", "127.0.0.1", "--services", "storage",
                "--storage-port", str(self.port), "--workers", str(self.processes)]
        self.procs = [subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)]
        wait_echo(self.port, self.aet)
        wait_listeners(self.port, self.processes)
        return self

    def pids(self) -> list[int]:
        parent = self.procs[0].pid
        children = Path(f"/proc/{parent}/task/{parent}/children")
        return [parent, *(int(pid) for pid in children.read_text().split())] if children.exists() else [parent]

    def count(self) -> int:
        import sqlite3

        with sqlite3.connect(self.work / "db.sqlite3") as db:
            return db.execute("select count(*) from pacs_instance").fetchone()[0]

    def spread(self) -> list[int]:
        """Associations per runscp process, most first (from the association log)."""
        import sqlite3

        with sqlite3.connect(self.work / "db.sqlite3") as db:
            rows = db.execute("select count(*) from dimse_associationlog where instances_received > 0 "
                              "group by process order by 1 desc").fetchall()
        return [count for (count,) in rows]

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=60)


class Orthanc:
    name = "Orthanc"
    aet = "ORTHANC"

    def __init__(self, work: Path) -> None:
        self.work = work

    def __enter__(self):
        fresh(self.work)
        self.port, http = free_port(), free_port()
        config = {
            "Name": "bench", "StorageDirectory": str(self.work / "db"), "IndexDirectory": str(self.work / "db"),
            "DicomAet": self.aet, "DicomPort": self.port, "HttpPort": http, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "StorageCompression": False,
            "Plugins": [], "ConcurrentJobs": 2,
        }
        (self.work / "config.json").write_text(json.dumps(config))
        self.http = http
        self.procs = [subprocess.Popen(["Orthanc", str(self.work / "config.json")], env=ENV,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        wait_echo(self.port, self.aet)
        return self

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def count(self) -> int:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}/statistics") as rsp:
            return json.load(rsp)["CountInstances"]

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)


def measure(server_factory, paths: list[Path], total_mb: float) -> list[dict]:
    rows = []
    for parts in (1, 4):
        folders = split(paths, parts, OUT / "split")
        with server_factory() as server:
            seconds = send(server.port, server.aet, folders)
            stored = server.count()
            rss = peak_rss_mb(server.pids())
            time.sleep(0.5)  # the association log is written just after the release
            spread = server.spread() if hasattr(server, "spread") else None
        rows.append({
            "server": server.name, "associations": parts, "instances": len(paths), "stored": stored,
            "seconds": round(seconds, 2), "instances_per_s": round(len(paths) / seconds, 1),
            "mb_per_s": round(total_mb / seconds, 1), "peak_rss_mb": round(rss, 1),
            **({"associations_per_process": spread} if spread is not None else {}),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--no-orthanc", action="store_true")
    parser.add_argument("--processes", type=int, default=2,
                        help="runscp --workers (default 2, as make run starts it)")
    parser.add_argument("--sync", choices=["full", "file"], default="full", help="PACS_SYNC of this PACS")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds, servers alternated within each; the table shows medians")
    args = parser.parse_args()
    paths = generate(OUT / "ct", args.count)
    total_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{len(paths)} instances, {total_mb:.0f} MB", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pacs-bench-", dir=OUT))
    servers = [lambda: OurServer(work / "pacs", args.processes, args.sync)]
    if not args.no_orthanc and shutil.which("Orthanc"):
        servers.append(lambda: Orthanc(work / "orthanc"))
    rows = []
    try:
        for _ in range(args.rounds):
            for factory in servers:
                rows += measure(factory, paths, total_mb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| server | associations | instances/s (median) | each round | MB/s | peak RSS MB |\n"
          "|---|---|---|---|---|---|")
    for key in dict.fromkeys((row["server"], row["associations"]) for row in rows):
        runs = [row for row in rows if (row["server"], row["associations"]) == key]
        middle = sorted(runs, key=lambda row: row["instances_per_s"])[len(runs) // 2]
        each = ", ".join(str(row["instances_per_s"]) for row in runs)
        print(f"| {key[0]} | {key[1]} | {middle['instances_per_s']} | {each} | {middle['mb_per_s']} | "
              f"{max(row['peak_rss_mb'] for row in runs)} |")


if __name__ == "__main__":
    sys.exit(main())

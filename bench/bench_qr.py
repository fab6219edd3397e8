"""Query/Retrieve benchmark: this PACS's runscp versus Orthanc, same data, same clients, same machine.

* C-FIND latency: wall time of one DCMTK ``findscu`` call (process start
  included) at STUDY level with 10,000 studies in the index - by PatientID,
  by wildcard PatientName, by a one-month StudyDate range.
* C-GET throughput: ``getscu`` of one 100-instance study (512x512 16-bit CT,
  ~50 MB) written to disk by getscu.
* C-MOVE throughput: ``movescu`` of the same study to a DCMTK ``storescp
  --ignore`` receiver (receives, does not write: measures the sender).

Our 10,000 index rows are bulk-created directly (bench only: the archive's
write path is ``instance_ingest``); the 100 CT instances are ingested for real.
Orthanc gets the same 10,000 studies (as tiny instances via storescu) and the
same 100 CT files.  Both servers run at once and are called in turn (one
call of each measure per round), so a drift of the shared machine reaches
both alike; medians are reported.  Usage::

    .venv/bin/python bench/bench_qr.py [--studies 10000] [--instances 100] [--runs 15] [--retrieves 5] [--no-orthanc]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TCP_NODELAY": "1"}
MODALITIES = ["CT", "MR", "CR", "US", "DX"]
SCU = "BENCHSCU"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dataset(*, study_uid, series_uid, number, patient_id, name, date, accession, modality, size) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.PatientID, ds.PatientName, ds.PatientBirthDate, ds.PatientSex = patient_id, name, "19700101", "O"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyDescription = date, "120000", accession, "BENCH"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, 1, number
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = size
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(0, 4096, size=(size, size), dtype=np.uint16).tobytes()
    return ds


def index_plan(count: int) -> list[dict]:
    """The synthetic studies: 4 per patient, dates over ten years."""
    start = datetime.date(2015, 1, 1)
    plan = []
    for i in range(count):
        patient = i // 4
        plan.append({
            "patient_id": f"B{patient:05d}", "name": f"PATIENT^{patient:05d}",
            "date": start + datetime.timedelta(days=(i * 37) % 3650),
            "accession": f"A{i:06d}", "modality": MODALITIES[i % len(MODALITIES)], "study_uid": generate_uid(),
        })
    return plan


def ct_study(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    paths = []
    for i in range(count):
        ds = _dataset(study_uid=study, series_uid=series, number=i + 1, patient_id="BENCHCT", name="BENCH^CT",
                      date="20261121", accession="BENCHCT", modality="CT", size=512)
        path = folder / f"CT{i:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def timed(cmd: list[str], **kwargs) -> float:
    started = time.perf_counter()
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=ENV, timeout=600, check=False,
                            **kwargs)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {result.stderr[-2000:]}")
    return elapsed


def wait_echo(port: int, aet: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run(["echoscu", "-aec", aet, "127.0.0.1", str(port)], capture_output=True, env=ENV,
                                check=False)
        if result.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{aet} on port {port} did not answer C-ECHO")


# --- Servers ---------------------------------------------------------------------------


class Pacs:
    name = "this PACS"
    aet = "QRSCP"

    def __init__(self, work: Path, plan: list[dict], ct_paths: list[Path], receiver_port: int) -> None:
        self.work, self.plan, self.ct_paths, self.receiver_port = work, plan, ct_paths, receiver_port

    def __enter__(self):
        os.environ["PACS_DATA_DIR"] = str(self.work)
        os.environ["PACS_LOG_LEVEL"] = "WARNING"
        os.environ["DATABASE_URL"] = ""
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pacs.settings")
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self._seed()
        self.port = free_port()
        env = {**ENV, "PACS_DATA_DIR": str(self.work), "PACS_LOG_LEVEL": "WARNING", "DATABASE_URL": ""}
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "runscp", "--services", "qr", "--qr-port", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_echo(self.port, self.aet)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _seed(self) -> None:
        from dimse.models import RemoteNode
        from pacs.models import Patient, Study
        from pacs.services.ingest import instance_ingest

        patients = {}
        for row in self.plan:
            patients.setdefault(row["patient_id"], Patient(
                patient_id=row["patient_id"], patient_name=row["name"], patient_name_alphabetic=row["name"],
                number_of_patient_related_studies=4, number_of_patient_related_series=4,
                number_of_patient_related_instances=4))
        Patient.objects.bulk_create(patients.values(), batch_size=2000)
        ids = dict(Patient.objects.values_list("patient_id", "id"))
        Study.objects.bulk_create([
            Study(patient_id=ids[row["patient_id"]], study_instance_uid=row["study_uid"], study_date=row["date"],
                  study_time=datetime.time(12), accession_number=row["accession"], study_description="BENCH",
                  modalities_in_study=row["modality"], number_of_study_related_series=1,
                  number_of_study_related_instances=1)
            for row in self.plan
        ], batch_size=2000)
        for path in self.ct_paths:
            instance_ingest(source=path)
        RemoteNode.objects.update_or_create(ae_title="BENCHRCV", defaults={"host": "127.0.0.1",
                                                                          "port": self.receiver_port})

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class Orthanc:
    name = "Orthanc"
    aet = "ORTHANC"

    def __init__(self, work: Path, plan: list[dict], ct_paths: list[Path], receiver_port: int) -> None:
        self.work, self.plan, self.ct_paths, self.receiver_port = work, plan, ct_paths, receiver_port

    def __enter__(self):
        self.work.mkdir(parents=True, exist_ok=True)
        self.port, http = free_port(), free_port()
        config = {
            "Name": "bench", "StorageDirectory": str(self.work / "db"), "IndexDirectory": str(self.work / "db"),
            "DicomAet": self.aet, "DicomPort": self.port, "HttpPort": http, "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False, "DicomCheckCalledAet": False, "StorageCompression": False,
            "Plugins": [], "DicomModalities": {
                "BENCHRCV": ["BENCHRCV", "127.0.0.1", self.receiver_port], SCU: [SCU, "127.0.0.1", 104]},
            "DicomCheckModalityHost": False,
        }
        (self.work / "config.json").write_text(json.dumps(config))
        self.process = subprocess.Popen(["Orthanc", str(self.work / "config.json")], env=ENV,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._seed()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _seed(self) -> None:
        wait_echo(self.port, self.aet)
        tiny = self.work / "tiny"
        tiny.mkdir(exist_ok=True)
        for row in self.plan:
            ds = _dataset(study_uid=row["study_uid"], series_uid=generate_uid(), number=1,
                          patient_id=row["patient_id"], name=row["name"], date=row["date"].strftime("%Y%m%d"),
                          accession=row["accession"], modality=row["modality"], size=8)
            ds.save_as(tiny / f"{row['accession']}.dcm", enforce_file_format=True)
        timed(["storescu", "-aet", SCU, "-aec", self.aet, "+sd", "127.0.0.1", self.port, tiny])
        timed(["storescu", "-aet", SCU, "-aec", self.aet, "127.0.0.1", self.port, *self.ct_paths])

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# --- Measurements -------------------------------------------------------------------------


def load_average() -> float:
    """1-minute load average: the machine is shared, so figures are reported with it."""
    return os.getloadavg()[0]


def measure_round(server, work: Path, plan: list[dict], ct_study_uid: str, instances: int, index: int, *,
                  find: bool, retrieve: bool, times: dict) -> None:
    """One call of each measure on *server*, appended to *times* (label -> seconds)."""
    patient = plan[len(plan) // 2]
    queries = {
        "PatientID": ["-k", f"PatientID={patient['patient_id']}"],
        "PatientName wildcard": ["-k", f"PatientName={patient['name'][:-1]}*"],
        "StudyDate month range": ["-k", "StudyDate=20200101-20200131"],
    }
    if find:
        for label, keys in queries.items():
            times[f"C-FIND {label} (ms/call)"].append(timed([
                "findscu", "-S", "-aet", SCU, "-aec", server.aet, "-k", "QueryRetrieveLevel=STUDY",
                "-k", "StudyInstanceUID", "-k", "AccessionNumber", *keys, "127.0.0.1", server.port]))
    if retrieve:
        target = work / f"get-{server.aet}-{index}"
        target.mkdir(parents=True)
        times["C-GET (instances/s)"].append(timed([
            "getscu", "-S", "-aet", SCU, "-aec", server.aet, "-od", target, "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={ct_study_uid}", "127.0.0.1", server.port]))
        received = len(list(target.iterdir()))
        if received != instances:
            raise RuntimeError(f"{server.name} C-GET delivered {received} of {instances}")
        shutil.rmtree(target)
        times["C-MOVE (instances/s)"].append(timed([
            "movescu", "-S", "-aet", SCU, "-aec", server.aet, "-aem", "BENCHRCV", "-k", "QueryRetrieveLevel=STUDY",
            "-k", f"StudyInstanceUID={ct_study_uid}", "127.0.0.1", server.port]))


def summarize(times: dict, instances: int) -> dict:
    """Medians: milliseconds per C-FIND call, instances per second for the retrieves."""
    return {label: (statistics.median(values) * 1000 if label.endswith("(ms/call)")
                    else instances / statistics.median(values)) for label, values in times.items()}


def _cell(value) -> str:
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--retrieves", type=int, default=5, help="C-GET and C-MOVE runs (median reported)")
    parser.add_argument("--no-orthanc", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-qr-"))
    receiver_port = free_port()
    receiver = subprocess.Popen(["storescp", "--ignore", "-aet", "BENCHRCV", str(receiver_port)], env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_echo(receiver_port, "BENCHRCV")
        plan = index_plan(args.studies)
        ct_paths = ct_study(work / "ct", args.instances)
        from pydicom import dcmread

        ct_study_uid = dcmread(ct_paths[0], stop_before_pixels=True).StudyInstanceUID
        servers = [Pacs(work / "pacs", plan, ct_paths, receiver_port)]
        if not args.no_orthanc and shutil.which("Orthanc"):
            servers.append(Orthanc(work / "orthanc", plan, ct_paths, receiver_port))
        with contextlib.ExitStack() as stack:
            running = [stack.enter_context(server) for server in servers]
            # Both servers up at once and called in turn: a drift of the shared machine
            # (disk flush latency, neighbours' load) reaches both alike.
            times = {server.name: defaultdict(list) for server in running}
            load_before = load_average()
            for index in range(max(args.runs, args.retrieves)):
                for server in running:
                    measure_round(server, work, plan, ct_study_uid, args.instances, index, find=index < args.runs,
                                  retrieve=index < args.retrieves, times=times[server.name])
            load = f"{load_before:.2f} / {load_average():.2f}"
        results = {name: {**summarize(values, args.instances), "load average before / after": load}
                   for name, values in times.items()}
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    names = list(results)
    print(f"\n{args.studies} studies in the index, {args.instances}-instance CT study (512x512x16 bit)\n")
    print("| measure | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for key in next(iter(results.values())):
        print(f"| {key} | " + " | ".join(_cell(results[n][key]) for n in names) + " |")



if __name__ == "__main__":
    main()

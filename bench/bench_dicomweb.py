#!/usr/bin/env python
"""DICOMweb benchmark: QIDO-RS latency, WADO-RS study throughput, thumbnail latency.

* QIDO-RS study search p50/p95 over 10,000 studies, in-process (Django test
  client through the whole middleware/auth/view stack, token auth): by
  PatientID, by wildcard PatientName with ``limit=25``, by a one-month
  StudyDate range with ``limit=100``, and a no-match query.
* WADO-RS retrieval of one study (100 CT instances, 512x512 16-bit, ~52 MB):
  in-process (iterating the streamed body) and over HTTP from a gunicorn
  worker on loopback (``requests`` reading 1 MiB chunks), MB/s.
* Thumbnail latency (series thumbnail, 128 px JPEG) in-process, p50.
* Side by side with Orthanc over HTTP (unless ``--no-orthanc``): the same
  QIDO-RS study searches against our gunicorn worker and Orthanc's DICOMweb
  plugin, each holding the same 10,000 studies (Orthanc gets them as tiny
  instances through storescu), and the same CT study retrieved with WADO-RS.
  Requests alternate between the two servers one by one, so both see the same
  machine load; the load average is printed before and after.

The 10,000 index rows are bulk-created directly (bench only: the archive's
write path is ``instance_ingest``); the CT instances are ingested for real.
Everything lives in a temporary PACS_DATA_DIR.  Orthanc's DICOMweb plugin is
the Debian package ``orthanc-dicomweb`` (``apt-get install orthanc-dicomweb``;
bench only, not needed by CI).  Usage::

    .venv/bin/python bench/bench_dicomweb.py [--studies 10000] [--instances 100] [--runs 50] [--no-orthanc]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
MODALITIES = ["CT", "MR", "CR", "US", "DX"]
START_DATE = datetime.date(2020, 1, 1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def p50(values: list[float]) -> float:
    return statistics.median(values)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def setup_django(work: Path) -> None:
    os.environ["PACS_DATA_DIR"] = str(work)
    os.environ["DATABASE_URL"] = ""
    os.environ["PACS_LOG_LEVEL"] = "WARNING"
    os.environ["PACS_MIN_FREE_MB"] = "1"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pacs.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def study_plan(index: int) -> dict:
    """The attributes of synthetic study *index* (same for this PACS and Orthanc)."""
    return {
        "patient_id": f"P{index:06d}", "name": f"NAME{index % 997:03d}^GIVEN{index % 13}",
        "birth_date": datetime.date(1950 + index % 50, 1 + index % 12, 1 + index % 28), "sex": "MF"[index % 2],
        "study_uid": f"1.2.826.0.1.3680043.9.7777.{index}", "date": START_DATE + datetime.timedelta(days=index % 1500),
        "time": datetime.time(10, index % 60), "accession": f"ACC{index:07d}", "modality": MODALITIES[index % 5],
    }


def seed_index(count: int) -> None:
    from pacs.models import Patient, Study

    plans = [study_plan(index) for index in range(count)]
    patients = [
        Patient(patient_id=row["patient_id"], patient_name=row["name"], patient_name_alphabetic=row["name"],
                patient_birth_date=row["birth_date"], patient_sex=row["sex"], number_of_patient_related_studies=1)
        for row in plans
    ]
    Patient.objects.bulk_create(patients, batch_size=2000)
    ids = dict(Patient.objects.values_list("patient_id", "id"))
    Study.objects.bulk_create([
        Study(patient_id=ids[row["patient_id"]], study_instance_uid=row["study_uid"], study_date=row["date"],
              study_time=row["time"], study_description="BENCH STUDY", accession_number=row["accession"],
              modalities_in_study=row["modality"], number_of_study_related_series=1,
              number_of_study_related_instances=1)
        for row in plans
    ], batch_size=2000)


def ingest_study(instances: int) -> tuple[str, str, int]:
    import numpy as np
    from pydicom.uid import generate_uid

    from pacs.services.ingest import IngestOrigin, instance_ingest
    from tests import dicom_factories as f

    study_uid, series_uid = generate_uid(), generate_uid()
    total = 0
    rng = np.random.default_rng(7)
    for number in range(instances):
        ds = f.ct_dataset(study_uid=study_uid, series_uid=series_uid, instance_number=number + 1, size=512,
                          patient_id="BENCHCT", patient_name="BENCH^CT")
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
        result = instance_ingest(source=f.encode(ds), origin=IngestOrigin(source="import"))
        total += result.file_size
    return study_uid, series_uid, total


# --- Orthanc (Debian packages orthanc + orthanc-dicomweb) --------------------------------


class Orthanc:
    """A throw-away Orthanc with the DICOMweb plugin, fresh storage, loopback only."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.http_port, self.dicom_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.http_port}/dicom-web"

    def __enter__(self):
        import requests

        self.work.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "bench", "StorageDirectory": str(self.work / "db"), "IndexDirectory": str(self.work / "db"),
            "DicomAet": "ORTHANC", "DicomPort": self.dicom_port, "HttpPort": self.http_port,
            "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "DicomCheckCalledAet": False,
            "StorageCompression": False, "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        (self.work / "config.json").write_text(json.dumps(config))
        self.process = subprocess.Popen(["Orthanc", str(self.work / "config.json")], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/studies?limit=1", timeout=10).status_code == 200:
                    return self
            except (requests.ConnectionError, requests.Timeout):
                pass
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("Orthanc with the DICOMweb plugin did not start")

    def seed(self, count: int, ct_paths: list[Path]) -> None:
        """The same studies as :func:`seed_index` (tiny instances) and the same CT files, via storescu."""
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

        tiny = self.work / "tiny"
        tiny.mkdir(exist_ok=True)
        for index in range(count):
            row = study_plan(index)
            ds = Dataset()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = row["study_uid"], generate_uid()
            ds.PatientID, ds.PatientName, ds.PatientSex = row["patient_id"], row["name"], row["sex"]
            ds.PatientBirthDate = row["birth_date"].strftime("%Y%m%d")
            ds.StudyDate, ds.StudyTime = row["date"].strftime("%Y%m%d"), row["time"].strftime("%H%M%S")
            ds.AccessionNumber, ds.StudyDescription, ds.Modality = row["accession"], "BENCH STUDY", row["modality"]
            ds.SeriesNumber = ds.InstanceNumber = 1
            ds.save_as(tiny / f"{index:06d}.dcm", enforce_file_format=True)
        for batch in (["+sd", str(tiny)], [str(path) for path in ct_paths]):
            if batch == []:
                continue
            subprocess.run(["storescu", "-aec", "ORTHANC", "127.0.0.1", str(self.dicom_port), *batch],
                           check=True, capture_output=True, timeout=3600, env={**os.environ, "TCP_NODELAY": "1"})

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def compare_over_http(ours: str, token: str, orthanc: Orthanc, queries: dict, study_uid: str, runs: int) -> dict:
    """QIDO-RS p50/p95 and WADO-RS MB/s of both servers, requests alternating one by one."""
    import requests

    servers = {"pacs": (f"{ours}/dicomweb", {"Authorization": f"Token {token}"}), "orthanc": (orthanc.url, {})}
    sessions = {}
    for name, (_, extra) in servers.items():
        sessions[name] = requests.Session()
        sessions[name].headers.update({**extra, "Accept": "application/dicom+json"})
    out: dict = {"load_average_before": [round(v, 2) for v in os.getloadavg()]}
    for label, params in queries.items():
        timings: dict[str, list[float]] = {name: [] for name in servers}
        counts = {}
        # '*' stays literal: Orthanc 1.10 (DICOMweb plugin 1.7) does not decode %2A and then matches nothing.
        query = urllib.parse.urlencode(params, safe="*")
        for name, (base, _) in servers.items():  # warm
            sessions[name].get(f"{base}/studies?{query}").raise_for_status()
        for _ in range(runs):
            for name, (base, _) in servers.items():
                begin = time.perf_counter()
                response = sessions[name].get(f"{base}/studies?{query}")
                timings[name].append((time.perf_counter() - begin) * 1000)
                response.raise_for_status()
                counts[name] = len(response.json()) if response.content else 0
        out[label] = {name: {"p50_ms": round(p50(t), 2), "p95_ms": round(p95(t), 2), "results": counts[name]}
                      for name, t in timings.items()}
        print(f"{label}: " + ", ".join(f"{name} p50 {v['p50_ms']} ms ({v['results']} results)"
                                       for name, v in out[label].items()), flush=True)
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    speeds: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(5):
        for name, (base, _) in servers.items():
            begin = time.perf_counter()
            with sessions[name].get(f"{base}/studies/{study_uid}", headers={"Accept": accept}, stream=True) as rsp:
                rsp.raise_for_status()
                size = sum(len(chunk) for chunk in rsp.iter_content(1024 * 1024))
            speeds[name].append(size / 1e6 / (time.perf_counter() - begin))
    out["wado_study_mb_s"] = {name: round(p50(v), 1) for name, v in speeds.items()}
    print(f"wado-rs study over HTTP: {out['wado_study_mb_s']} MB/s", flush=True)
    out["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    print(f"load average before {out['load_average_before']} after {out['load_average_after']} "
          f"({os.cpu_count()} CPUs)", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--no-orthanc", action="store_true", help="skip the side-by-side run with Orthanc")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dicomweb-") as folder:
        work = Path(folder)
        setup_django(work)
        from django.contrib.auth import get_user_model
        from django.test import Client
        from rest_framework.authtoken.models import Token

        from pacs.services.config import archive_config_update

        archive_config_update(min_free_mb=1)
        user = get_user_model().objects.create_superuser("bench", "", "bench-password-1")
        token = Token.objects.create(user=user).key
        headers = {"HTTP_AUTHORIZATION": f"Token {token}", "HTTP_ACCEPT": "application/dicom+json"}
        started = time.perf_counter()
        seed_index(args.studies)
        print(f"seeded {args.studies} studies in {time.perf_counter() - started:.1f}s", flush=True)
        started = time.perf_counter()
        study_uid, series_uid, study_bytes = ingest_study(args.instances)
        print(f"ingested {args.instances} CT instances ({study_bytes / 1e6:.1f} MB) in "
              f"{time.perf_counter() - started:.1f}s", flush=True)

        client = Client()
        results: dict = {"studies": args.studies, "instances": args.instances, "study_mb": study_bytes / 1e6}
        queries = {
            "qido_patient_id": {"PatientID": f"P{args.studies // 2:06d}"},
            "qido_name_wildcard_limit25": {"PatientName": "NAME5*", "limit": "25"},
            "qido_date_range_limit100": {"StudyDate": "20220101-20220131", "limit": "100"},
            "qido_no_match": {"AccessionNumber": "NOPE"},
        }
        for name, params in queries.items():
            client.get("/dicomweb/studies", params, **headers)  # warm
            timings = []
            for _ in range(args.runs):
                begin = time.perf_counter()
                response = client.get("/dicomweb/studies", params, **headers)
                timings.append((time.perf_counter() - begin) * 1000)
                assert response.status_code == 200, response.content[:200]
            results[name] = {"p50_ms": round(p50(timings), 2), "p95_ms": round(p95(timings), 2),
                             "results": len(response.json())}
            print(f"{name}: p50 {results[name]['p50_ms']} ms, p95 {results[name]['p95_ms']} ms, "
                  f"{results[name]['results']} results", flush=True)

        # WADO-RS in-process: the streamed body as produced by the view.
        retrieve_headers = {"HTTP_AUTHORIZATION": f"Token {token}",
                            "HTTP_ACCEPT": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
        speeds = []
        for _ in range(5):
            begin = time.perf_counter()
            response = client.get(f"/dicomweb/studies/{study_uid}", **retrieve_headers)
            size = sum(len(chunk) for chunk in response.streaming_content)
            speeds.append(size / 1e6 / (time.perf_counter() - begin))
        results["wado_in_process_mb_s"] = round(p50(speeds), 1)
        print(f"wado-rs study in-process: {results['wado_in_process_mb_s']} MB/s ({size / 1e6:.1f} MB)", flush=True)

        # WADO-RS over HTTP from gunicorn on loopback.
        import requests

        port = free_port()
        env = {**os.environ, "PACS_DATA_DIR": str(work), "DATABASE_URL": "", "PACS_LOG_LEVEL": "WARNING"}
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "pacs.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1", "--threads", "2",
             "--log-level", "warning"], cwd=ROOT, env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    requests.get(f"http://127.0.0.1:{port}/dicomweb/studies", timeout=10)
                    break
                except (requests.ConnectionError, requests.Timeout):  # a loaded machine: slow first import
                    time.sleep(0.2)
            session = requests.Session()
            session.headers.update({"Authorization": f"Token {token}",
                                    "Accept": retrieve_headers["HTTP_ACCEPT"]})
            speeds = []
            for _ in range(5):
                begin = time.perf_counter()
                with session.get(f"http://127.0.0.1:{port}/dicomweb/studies/{study_uid}", stream=True) as response:
                    size = sum(len(chunk) for chunk in response.iter_content(1024 * 1024))
                speeds.append(size / 1e6 / (time.perf_counter() - begin))
            results["wado_http_mb_s"] = round(p50(speeds), 1)
            print(f"wado-rs study over HTTP (gunicorn, loopback): {results['wado_http_mb_s']} MB/s", flush=True)
            if not args.no_orthanc and shutil.which("Orthanc") and DICOMWEB_PLUGIN.exists():
                from pacs.models import Instance
                from pacs.storage import absolute_path

                ct_paths = [absolute_path(p) for p in Instance.objects.filter(
                    series__study__study_instance_uid=study_uid).values_list("file_path", flat=True)]
                with Orthanc(work / "orthanc") as orthanc:
                    started = time.perf_counter()
                    orthanc.seed(args.studies, ct_paths)
                    print(f"Orthanc seeded with {args.studies} studies + the CT study in "
                          f"{time.perf_counter() - started:.1f}s", flush=True)
                    results["http_side_by_side"] = compare_over_http(
                        f"http://127.0.0.1:{port}", token, orthanc, queries, study_uid, args.runs)
            elif not args.no_orthanc:
                print("Orthanc or its DICOMweb plugin is not installed: side-by-side run skipped", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)

        thumb_headers = {"HTTP_AUTHORIZATION": f"Token {token}"}
        timings = []
        for _ in range(min(args.runs, 20)):
            begin = time.perf_counter()
            response = client.get(f"/dicomweb/studies/{study_uid}/series/{series_uid}/thumbnail", **thumb_headers)
            timings.append((time.perf_counter() - begin) * 1000)
            assert response.status_code == 200
        results["thumbnail_p50_ms"] = round(p50(timings), 1)
        print(f"series thumbnail (512x512 -> 128 px JPEG): p50 {results['thumbnail_p50_ms']} ms", flush=True)
        out = ROOT / "bench" / "out"
        out.mkdir(exist_ok=True)
        (out / "bench_dicomweb.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

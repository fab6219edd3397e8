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

The 10,000 index rows are bulk-created directly (bench only: the archive's
write path is ``instance_ingest``); the CT instances are ingested for real.
Everything lives in a temporary PACS_DATA_DIR.  Usage::

    .venv/bin/python bench/bench_dicomweb.py [--studies 10000] [--instances 100] [--runs 50]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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


def seed_index(count: int) -> None:
    from pacs.models import Patient, Study

    start = datetime.date(2020, 1, 1)
    patients = [
        Patient(patient_id=f"P{index:06d}", patient_name=f"NAME{index % 997:03d}^GIVEN{index % 13}",
                patient_name_alphabetic=f"NAME{index % 997:03d}^GIVEN{index % 13}",
                patient_birth_date=datetime.date(1950 + index % 50, 1 + index % 12, 1 + index % 28),
                patient_sex="MF"[index % 2], number_of_patient_related_studies=1)
        for index in range(count)
    ]
    Patient.objects.bulk_create(patients, batch_size=2000)
    ids = dict(Patient.objects.values_list("patient_id", "id"))
    modalities = ["CT", "MR", "CR", "US", "DX"]
    Study.objects.bulk_create([
        Study(patient_id=ids[f"P{index:06d}"], study_instance_uid=f"1.2.826.0.1.3680043.9.7777.{index}",
              study_date=start + datetime.timedelta(days=index % 1500), study_time=datetime.time(10, index % 60),
              study_description="BENCH STUDY", accession_number=f"ACC{index:07d}",
              modalities_in_study=modalities[index % 5], number_of_study_related_series=1,
              number_of_study_related_instances=1)
        for index in range(count)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
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
                    requests.get(f"http://127.0.0.1:{port}/dicomweb/studies", timeout=2)
                    break
                except requests.ConnectionError:
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

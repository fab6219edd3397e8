"""DICOMweb against a live server: the real dicomweb-client package and raw requests."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from pacs.models import Instance, Study
from tests import dicom_factories as f
from tests.dicomweb.conftest import ingest, multipart_parts

pytestmark = pytest.mark.django_db(transaction=True)


def multipart_body(parts: list[bytes], boundary: str = "stowboundary", part_type: str = "application/dicom") -> bytes:
    out = b""
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=stowboundary'


# --- STOW-RS --------------------------------------------------------------------------


def test_store_with_dicomweb_client_then_search_and_retrieve(dw_client, stored_study):
    study_uid = generate_uid()
    datasets = [f.ct_dataset(study_uid=study_uid, series_uid=generate_uid(), instance_number=i + 1,
                             patient_id="STOW1", patient_name="STOW^ALICE") for i in range(2)]
    answer = dw_client.store_instances(datasets)
    referenced = answer.ReferencedSOPSequence
    assert {item.ReferencedSOPInstanceUID for item in referenced} == {ds.SOPInstanceUID for ds in datasets}
    assert all(item.RetrieveURL.endswith(item.ReferencedSOPInstanceUID) for item in referenced)
    assert Instance.objects.filter(series__study__study_instance_uid=study_uid).count() == 2

    found = dw_client.search_for_studies(search_filters={"PatientID": "STOW1"})
    assert [item["0020000D"]["Value"][0] for item in found] == [study_uid]
    assert found[0]["00100010"]["Value"][0] == {"Alphabetic": "STOW^ALICE"}

    retrieved = dw_client.retrieve_study(study_uid)
    assert sorted(ds.SOPInstanceUID for ds in retrieved) == sorted(ds.SOPInstanceUID for ds in datasets)
    by_uid = {ds.SOPInstanceUID: ds for ds in datasets}
    for ds in retrieved:
        assert np.array_equal(ds.pixel_array, by_uid[ds.SOPInstanceUID].pixel_array)


def test_stow_partial_failure_is_202_with_failed_sop_sequence(http, archive_config):
    good = f.ct_dataset()
    body = multipart_body([f.encode(good), b"this is not DICOM at all" * 20])
    response = http.post(http.url("/dicomweb/studies"), data=body, headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["00081199"]["Value"][0]["00081155"]["Value"] == [good.SOPInstanceUID]
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]
    assert Instance.objects.filter(sop_instance_uid=good.SOPInstanceUID).exists()


def test_stow_nothing_stored_is_409_and_wrong_type_is_415(http, archive_config):
    response = http.post(http.url("/dicomweb/studies"), data=multipart_body([b"garbage" * 40]),
                         headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xC000]

    response = http.post(http.url("/dicomweb/studies"), data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status_code == 415
    response = http.post(
        http.url("/dicomweb/studies"), data=multipart_body([b"{}"], part_type="application/dicom+json"),
        headers={"Content-Type": 'multipart/related; type="application/dicom+json"; boundary=stowboundary'},
    )
    assert response.status_code == 415
    assert Instance.objects.count() == 0


def test_stow_into_named_study_rejects_instances_of_another_study(http, archive_config):
    inside, outside = f.ct_dataset(), f.ct_dataset()
    url = http.url(f"/dicomweb/studies/{inside.StudyInstanceUID}/")  # trailing slash: no redirect
    body = multipart_body([f.encode(inside), f.encode(outside)])
    response = http.post(url, data=body, headers={"Content-Type": STOW_TYPE}, allow_redirects=False)
    assert response.status_code == 202
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081155"]["Value"] == [outside.SOPInstanceUID]
    assert failed[0]["00081197"]["Value"] == [0x0119]
    assert not Instance.objects.filter(sop_instance_uid=outside.SOPInstanceUID).exists()


def test_stow_large_part_is_spooled_and_stored(http, archive_config, monkeypatch):
    from dicomweb import parsers

    monkeypatch.setattr(parsers, "SPOOL_BYTES", 4096)  # this 32 KiB part goes through a temp file
    monkeypatch.setattr(parsers, "CHUNK_BYTES", 1000)  # and crosses many read boundaries
    ds = f.ct_dataset(size=128)
    response = http.post(http.url("/dicomweb/studies"), data=multipart_body([f.encode(ds)]),
                         headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 200, response.text
    stored = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    assert stored.file_size == len(f.encode(ds))



def test_stow_part_below_the_free_space_floor_is_refused_before_spooling(http, archive_config, monkeypatch,
                                                                        storage_root):
    from django.conf import settings

    from dicomweb import parsers

    monkeypatch.setattr(parsers, "SPOOL_BYTES", 4096)
    spooled = []
    real_mkstemp = parsers.tempfile.mkstemp
    monkeypatch.setattr(parsers.tempfile, "mkstemp", lambda **kw: spooled.append(kw) or real_mkstemp(**kw))
    archive_config(min_free_mb=10**9)  # more than any disk: the volume is "full"
    big = f.ct_dataset(size=128)
    response = http.post(http.url("/dicomweb/studies"), data=multipart_body([f.encode(big)]),
                         headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 409, response.text
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081155"]["Value"] == [big.SOPInstanceUID]
    assert failed[0]["00081197"]["Value"] == [0xA700]
    assert spooled == []  # nothing of it was written to disk
    assert not list(Path(settings.PACS_TEMP_DIR).glob("stow-*.part"))
    assert Instance.objects.count() == 0


def test_stow_disk_full_while_spooling_fails_that_part_only_and_leaves_no_file(http, archive_config, monkeypatch,
                                                                              tmp_path):
    from dicomweb import parsers

    monkeypatch.setattr(parsers, "SPOOL_BYTES", 4096)
    spool = tmp_path / "stow-full.part"

    def mkstemp_on_a_full_disk(**kwargs):
        spool.touch()
        return os.open("/dev/full", os.O_WRONLY), str(spool)  # every write: ENOSPC, as on a full volume

    monkeypatch.setattr(parsers.tempfile, "mkstemp", mkstemp_on_a_full_disk)
    big, small = f.ct_dataset(size=128), f.ct_dataset(size=8)
    response = http.post(http.url("/dicomweb/studies"), data=multipart_body([f.encode(big), f.encode(small)]),
                         headers={"Content-Type": STOW_TYPE})
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["00081198"]["Value"][0]["00081155"]["Value"] == [big.SOPInstanceUID]
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]
    assert answer["00081199"]["Value"][0]["00081155"]["Value"] == [small.SOPInstanceUID]
    assert not spool.exists()
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [small.SOPInstanceUID]

# --- QIDO-RS --------------------------------------------------------------------------


@pytest.fixture
def studies(archive_config):
    specs = [
        ("Q1", "WANG^XIAOMING", "20240110", "CT", "ACC-A"),
        ("Q2", "WANG^DAMING", "20240220", "MR", "ACC-B"),
        ("Q3", "SMITH^JOHN", "20231231", "CT", "ACC-C"),
    ]
    out = {}
    for pid, name, date, modality, accession in specs:
        ds = f.ct_dataset(patient_id=pid, patient_name=name, modality=modality, StudyDate=date,
                          AccessionNumber=accession)
        ingest(ds)
        out[pid] = ds
    return out


def _uids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["0020000D"]["Value"][0] for item in response.json()}


def test_qido_matching_keys_and_aliases(http, studies):
    url = http.url("/dicomweb/studies")
    q1, q2, q3 = studies["Q1"], studies["Q2"], studies["Q3"]
    assert _uids(http.get(url, params={"PatientName": "WANG*"})) == {q1.StudyInstanceUID, q2.StudyInstanceUID}
    assert _uids(http.get(url, params={"00100020": "Q3"})) == {q3.StudyInstanceUID}
    assert _uids(http.get(url, params={"StudyDate": "20240101-"})) == {q1.StudyInstanceUID, q2.StudyInstanceUID}
    assert _uids(http.get(url, params={"StudyDate": "-20231231"})) == {q3.StudyInstanceUID}
    assert _uids(http.get(url, params={"Modality": "MR"})) == {q2.StudyInstanceUID}
    assert _uids(http.get(url, params={"ModalitiesInStudy": "CT"})) == {q1.StudyInstanceUID, q3.StudyInstanceUID}
    assert _uids(http.get(url, params={"AccessionNumber": "ACC-?"})) == {
        q1.StudyInstanceUID, q2.StudyInstanceUID, q3.StudyInstanceUID}
    both = f"{q1.StudyInstanceUID},{q3.StudyInstanceUID}"
    assert _uids(http.get(url, params={"StudyInstanceUID": both})) == {q1.StudyInstanceUID, q3.StudyInstanceUID}
    backslash = f"{q1.StudyInstanceUID}\\{q2.StudyInstanceUID}"
    assert _uids(http.get(url, params={"StudyInstanceUID": backslash})) == {q1.StudyInstanceUID, q2.StudyInstanceUID}
    # Percent-encoded value in a hand-written URL, and fuzzy matching of a given name.
    assert _uids(http.get(url + "?PatientName=SMITH%5EJ%2A")) == {q3.StudyInstanceUID}
    assert _uids(http.get(url, params={"PatientName": "dam", "fuzzymatching": "true"})) == {q2.StudyInstanceUID}


def test_qido_no_match_is_200_empty_array(http, studies):
    response = http.get(http.url("/dicomweb/studies"), params={"PatientID": "NOBODY"})
    assert response.status_code == 200
    assert response.json() == []


def test_qido_paging_includefield_and_empty_values(http, studies):
    url = http.url("/dicomweb/studies")
    first = http.get(url, params={"limit": 2, "offset": 0}).json()
    second = http.get(url, params={"limit": 2, "offset": 2}).json()
    assert len(first) == 2 and len(second) == 1
    assert not {i["0020000D"]["Value"][0] for i in first} & {i["0020000D"]["Value"][0] for i in second}
    warned = http.get(url, params={"limit": 1})
    assert "299" in warned.headers.get("Warning", "")

    items = http.get(url, params={"PatientID": "Q1", "includefield": ["InstitutionName,00081080", "SOPClassesInStudy"]}).json()
    item = items[0]
    assert item["00080080"] == {"vr": "LO"}  # known, empty: no Value (PS3.18 F.2.5)
    assert item["00081080"] == {"vr": "LO"}  # not indexed: present and empty
    assert item["00080062"]["Value"] == [f.ct_dataset().SOPClassUID]
    everything = http.get(url, params={"PatientID": "Q1", "includefield": "all"}).json()[0]
    assert "00201206" in everything and "00100040" in everything


def test_qido_series_and_instances_levels(http, stored_study):
    ds = stored_study[0]
    series = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/series")).json()
    assert [s["0020000E"]["Value"][0] for s in series] == [ds.SeriesInstanceUID]
    assert series[0]["00201209"]["Value"] == [3]
    instances = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances"),
                         params={"InstanceNumber": "2"}).json()
    assert [i["00080018"]["Value"][0] for i in instances] == [stored_study[1].SOPInstanceUID]
    assert instances[0]["00081190"]["Value"][0].endswith(f"/instances/{stored_study[1].SOPInstanceUID}")
    all_instances = http.get(http.url("/dicomweb/instances"), params={"StudyInstanceUID": ds.StudyInstanceUID}).json()
    assert len(all_instances) == 3 and "00100020" in all_instances[0]  # study attributes included
    all_series = http.get(http.url("/dicomweb/series"), params={"Modality": "CT"}).json()
    assert len(all_series) == 1


@pytest.mark.parametrize(
    "params, name",
    [
        ({"StudyDate": "2024-13"}, "query"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"NotAKeyword": "x"}, "NotAKeyword"),
        ({"SOPInstanceUID": "1.2.3"}, "SOPInstanceUID"),
        ({"StudyInstanceUID": "1.2.abc"}, "query"),
        ({"fuzzymatching": "maybe"}, "fuzzymatching"),
        ({"includefield": "Bogus"}, "includefield"),
    ],
)
def test_qido_malformed_query_is_400_naming_the_parameter(http, studies, params, name):
    response = http.get(http.url("/dicomweb/studies"), params=params)
    assert response.status_code == 400
    assert name in response.json()


def test_qido_query_count_is_constant(client, django_user_model, studies, django_assert_max_num_queries):
    user = django_user_model.objects.create_superuser("counter", "", "pw-pw-pw-1")
    client.force_login(user)
    for index in range(10):
        ingest(f.ct_dataset(patient_id=f"N{index}"))
    with django_assert_max_num_queries(4):
        response = client.get("/dicomweb/studies")
    assert len(response.json()) == 13
    with django_assert_max_num_queries(4):
        response = client.get("/dicomweb/instances")
    assert len(response.json()) == 13


# --- WADO-RS --------------------------------------------------------------------------


def test_retrieve_study_multipart_media_types_and_boundaries(http, stored_study):
    ds = stored_study[0]
    response = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}"),
                        headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith('multipart/related; type="application/dicom"; boundary=')
    parts = multipart_parts(response)
    assert len(parts) == 3
    for headers, data in parts:
        assert headers["content-type"] == f"application/dicom; transfer-syntax={f.EXPLICIT_LE}"
        assert dcmread(io.BytesIO(data)).StudyInstanceUID == ds.StudyInstanceUID
    stored = Instance.objects.get(sop_instance_uid=ds.SOPInstanceUID)
    from pacs.storage import absolute_path

    assert absolute_path(stored.file_path).read_bytes() in [data for _, data in parts]  # bytes as stored


def test_retrieve_transcodes_to_default_and_keeps_stored_with_star(http, archive_config):
    original = f.ct_dataset()
    stored = ingest(original, f.J2K_LOSSLESS)  # compressing gives the instance a new SOP Instance UID
    url = http.url(f"/dicomweb/studies/{original.StudyInstanceUID}/series/{original.SeriesInstanceUID}"
                   f"/instances/{stored.sop_instance_uid}")
    default = multipart_parts(http.get(url))
    ds = dcmread(io.BytesIO(default[0][1]))
    assert ds.file_meta.TransferSyntaxUID == f.EXPLICIT_LE
    assert np.array_equal(ds.pixel_array, original.pixel_array)

    quoted = http.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax="*"'})
    assert dcmread(io.BytesIO(multipart_parts(quoted)[0][1])).file_meta.TransferSyntaxUID == f.J2K_LOSSLESS

    rle = http.get(url, headers={"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={f.RLE}'})
    ds = dcmread(io.BytesIO(multipart_parts(rle)[0][1]))
    assert ds.file_meta.TransferSyntaxUID == f.RLE
    assert np.array_equal(ds.pixel_array, original.pixel_array)

    impossible = http.get(url, headers={"Accept": 'multipart/related; type="application/dicom"; '
                                                  'transfer-syntax=1.2.840.10008.1.2.4.100'})
    assert impossible.status_code == 406
    assert http.get(url, headers={"Accept": "text/html"}).status_code == 406


def test_metadata_bulkdata_uri_serves_the_pixel_data(http, stored_study):
    ds = stored_study[0]
    metadata = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata")).json()
    assert len(metadata) == 3
    first = next(m for m in metadata if m["00080018"]["Value"][0] == ds.SOPInstanceUID)
    assert first["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN"}]
    uri = first["7FE00010"]["BulkDataURI"]
    assert uri.startswith(http.base)
    bulk = http.get(uri)
    assert bulk.status_code == 200
    (headers, data), = multipart_parts(bulk)
    assert data == ds.PixelData
    inline = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/metadata"),
                      params={"inlinebinary": "true"}).json()
    assert all("BulkDataURI" not in json.dumps(item) for item in inline)


def test_frames_native_and_compressed(http, dw_client, archive_config):
    frames = np.stack([np.full((16, 16), 100 * (i + 1), dtype=np.uint16) for i in range(3)])
    ds = f.ct_dataset(size=16)
    ds.NumberOfFrames = 3
    ds.PixelData = frames.tobytes()
    stored = ingest(ds, f.RLE)
    args = (ds.StudyInstanceUID, ds.SeriesInstanceUID, stored.sop_instance_uid)
    got = dw_client.retrieve_instance_frames(*args, frame_numbers=[1, 3],
                                             media_types=("application/octet-stream",))
    assert [np.frombuffer(g, "<u2").reshape(16, 16)[0, 0] for g in got] == [100, 300]

    url = http.url(f"/dicomweb/studies/{args[0]}/series/{args[1]}/instances/{args[2]}/frames/2")
    as_stored = http.get(url, headers={"Accept": 'multipart/related; type="image/dicom-rle"'})
    (headers, data), = multipart_parts(as_stored)
    assert headers["content-type"] == f"image/dicom-rle; transfer-syntax={f.RLE}"
    from pydicom.encaps import generate_frames

    from pacs.storage import absolute_path

    stored_file = dcmread(absolute_path(Instance.objects.get(sop_instance_uid=args[2]).file_path))
    assert data == list(generate_frames(stored_file.PixelData, number_of_frames=3))[1]  # frame 2, as stored
    assert http.get(url.replace("/frames/2", "/frames/9")).status_code == 404
    assert http.get(url.replace("/frames/2", "/frames/1,x")).status_code == 400


def test_rendered_and_thumbnails(http, dw_client, stored_study):
    ds = stored_study[0]
    base = f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    jpeg = http.get(http.url(base + "/rendered"), params={"window": "40,400", "viewport": "64,64", "quality": "50"})
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 64)
    png = http.get(http.url(base + "/frames/1/rendered"), params={"accept": "image/png"})
    assert png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (32, 32)
    rendered = dw_client.retrieve_instance_rendered(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
                                                    media_types=("image/jpeg",))
    assert rendered[:2] == b"\xff\xd8"
    for path in (f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail",
                 f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/thumbnail",
                 base + "/thumbnail"):
        thumb = http.get(http.url(path), params={"size": "16"})
        assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/jpeg"
        assert Image.open(io.BytesIO(thumb.content)).size == (16, 16)
    series = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/rendered"))
    assert [h["content-type"] for h, _ in multipart_parts(series)] == ["image/jpeg"] * 3
    assert http.get(http.url(base + "/rendered"), params={"window": "abc"}).status_code == 400
    assert http.get(http.url(base + "/rendered"), params={"accept": "image/gif"}).status_code == 400


def test_thumbnail_keeps_aspect_ratio(http, archive_config):
    ds = f.ct_dataset(size=32)
    arr = np.zeros((32, 64), dtype=np.uint16)
    ds.Columns, ds.PixelData = 64, arr.tobytes()
    ingest(ds)
    thumb = http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}/thumbnail"), params={"size": "32"})
    assert Image.open(io.BytesIO(thumb.content)).size == (32, 16)


@pytest.mark.parametrize("bad", ["1.2.3a", "1.2..3", "x" * 65, "1" * 65, "1.2.3%00", "..%2F..%2Fetc", "%252e%252e"])
def test_bad_uids_are_400_and_unknown_uids_404(http, stored_study, bad):
    response = http.get(http.base + f"/dicomweb/studies/{bad}/metadata")
    assert response.status_code == 400, (bad, response.status_code)
    assert http.get(http.url("/dicomweb/studies/1.2.3.4.5/metadata")).status_code == 404
    assert http.get(http.url("/dicomweb/studies/1.2.3.4.5")).status_code == 404


# --- Auth and CORS --------------------------------------------------------------------


def test_auth_required_unless_anonymous_read(live_server, stored_study, settings, http):
    import requests

    url = live_server.url + "/dicomweb/studies"
    response = requests.get(url)
    assert response.status_code == 401
    assert "WWW-Authenticate" in response.headers
    settings.PACS_ANONYMOUS_READ = True
    assert requests.get(url).status_code == 200
    stow = requests.post(url, data=multipart_body([f.encode(f.ct_dataset())]), headers={"Content-Type": STOW_TYPE})
    assert stow.status_code == 401

    from tests.dicomweb.conftest import PASSWORD

    settings.PACS_ANONYMOUS_READ = False
    with_token = requests.get(url, headers={"Authorization": http.headers["Authorization"]})
    assert with_token.status_code == 200 and len(with_token.json()) == 1
    with_basic = requests.get(url, auth=(http.username, PASSWORD))
    assert with_basic.status_code == 200
    assert requests.get(url, auth=(http.username, "wrong")).status_code == 401


def test_store_needs_the_add_instance_permission(live_server, django_user_model, archive_config):
    import requests
    from django.contrib.auth.models import Group, Permission
    from rest_framework.authtoken.models import Token

    user = django_user_model.objects.create_user("uploader", "", "pw-pw-pw-pw-1")
    headers = {"Authorization": f"Token {Token.objects.create(user=user).key}", "Content-Type": STOW_TYPE}
    body = multipart_body([f.encode(f.ct_dataset())])
    assert requests.get(live_server.url + "/dicomweb/studies", headers=headers).status_code == 200
    assert requests.post(live_server.url + "/dicomweb/studies", data=body, headers=headers).status_code == 403
    group = Group.objects.create(name="modalities")
    group.permissions.add(Permission.objects.get(codename="add_instance"))
    user.groups.add(group)
    assert requests.post(live_server.url + "/dicomweb/studies", data=body, headers=headers).status_code == 200


def test_dicomweb_client_bulkdata_uri_carries_the_port(dw_client, stored_study, live_server):
    ds = stored_study[0]
    metadata = dw_client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    uri = metadata["7FE00010"]["BulkDataURI"]
    assert uri.startswith(live_server.url)  # dicomweb-client sends Host without the port
    assert dw_client.retrieve_bulkdata(uri)[0] == ds.PixelData


def test_cors_preflight_without_auth_and_on_errors(live_server, settings, archive_config):
    import requests

    settings.CORS_ALLOWED_ORIGINS = ["http://viewer.example:3000"]
    origin = {"Origin": "http://viewer.example:3000"}
    preflight = requests.options(
        live_server.url + "/dicomweb/studies",
        headers={**origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    denied = requests.get(live_server.url + "/dicomweb/studies", headers=origin)
    assert denied.status_code == 401
    assert denied.headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"
    missing = requests.get(live_server.url + "/dicomweb/studies/1.2.3/metadata", headers=origin, auth=("x", "y"))
    assert missing.headers["Access-Control-Allow-Origin"] == "http://viewer.example:3000"


# --- WADO-URI -------------------------------------------------------------------------


def _wado(http, ds, **params):
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID, **params}
    return http.get(http.url("/wado"), params=query)


def test_wado_uri_images_and_parameters(http, stored_study):
    ds = stored_study[0]
    default = _wado(http, ds)
    assert default.status_code == 200 and default.headers["Content-Type"] == "image/jpeg"
    png = _wado(http, ds, contentType="image/png", rows="16", columns="16", windowCenter="40", windowWidth="400")
    assert png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (16, 16)
    region = _wado(http, ds, contentType="image/png", region="0,0,0.5,0.25")
    assert Image.open(io.BytesIO(region.content)).size == (16, 8)
    assert _wado(http, ds, frameNumber="2").status_code == 400


def test_wado_uri_dicom_transfer_syntax_is_pixel_equal(http, archive_config):
    original = f.ct_dataset()
    ingest(original, f.IMPLICIT_LE)
    assert Instance.objects.get(sop_instance_uid=original.SOPInstanceUID).transfer_syntax_uid == f.IMPLICIT_LE
    for syntax in (f.EXPLICIT_LE, f.RLE, f.JPEG_LS_LOSSLESS, f.J2K_LOSSLESS):
        response = _wado(http, original, contentType="application/dicom", transferSyntax=syntax)
        assert response.status_code == 200, (syntax, response.text)
        ds = dcmread(io.BytesIO(response.content))
        assert ds.file_meta.TransferSyntaxUID == syntax
        assert np.array_equal(ds.pixel_array, original.pixel_array)


def test_wado_uri_anonymize_removes_phi(http, stored_study):
    ds = stored_study[0]
    response = _wado(http, ds, contentType="application/dicom", anonymize="yes")
    anon = dcmread(io.BytesIO(response.content))
    assert str(anon.PatientName) != "DOE^JOHN" and anon.PatientID != "P001"
    assert anon.get("PatientBirthDate", "") == "" and anon.get("ReferringPhysicianName", "") == ""
    assert anon.SOPInstanceUID != ds.SOPInstanceUID and anon.StudyInstanceUID != ds.StudyInstanceUID
    assert anon.PatientIdentityRemoved == "YES"
    assert np.array_equal(anon.pixel_array, ds.pixel_array)
    again = dcmread(io.BytesIO(_wado(http, ds, contentType="application/dicom", anonymize="yes").content))
    assert again.StudyInstanceUID == anon.StudyInstanceUID  # consistent mapping


@pytest.mark.parametrize(
    "params, status",
    [
        ({"requestType": "WADOX"}, 400),
        ({"objectUID": None}, 400),
        ({"objectUID": "1.2.3.4"}, 404),
        ({"objectUID": "1.2/../3"}, 400),
        ({"contentType": "text/html"}, 400),
        ({"transferSyntax": "1.2.3"}, 400),
        ({"rows": "0"}, 400),
        ({"region": "0.5,0,0.2,1"}, 400),
        ({"windowCenter": "40"}, 400),
        ({"transferSyntax": "1.2.840.10008.1.2.4.50", "contentType": "application/dicom"}, 406),
    ],
)
def test_wado_uri_bad_parameters(http, stored_study, params, status):
    ds = stored_study[0]
    query = {"requestType": "WADO", "studyUID": ds.StudyInstanceUID, "seriesUID": ds.SeriesInstanceUID,
             "objectUID": ds.SOPInstanceUID}
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    response = http.get(http.url("/wado"), params=query)
    assert response.status_code == status, response.text
    assert response.json()


def test_study_counts_unchanged_by_reads(http, stored_study):
    ds = stored_study[0]
    http.get(http.url(f"/dicomweb/studies/{ds.StudyInstanceUID}"))
    study = Study.objects.get(study_instance_uid=ds.StudyInstanceUID)
    assert study.number_of_study_related_instances == 3


@pytest.mark.parametrize("syntax", [f.JPEG_BASELINE, f.JPEG_LOSSLESS_SV1, f.JPEG_LS_LOSSLESS, f.J2K, f.RLE,
                                    f.EXPLICIT_BE, f.DEFLATED])
def test_rendered_from_every_stored_syntax(http, archive_config, syntax):
    ds = f.ct_dataset(size=32)
    stored = ingest(ds, syntax)
    base = (f"/dicomweb/studies/{stored.study_instance_uid}/series/{stored.series_instance_uid}"
            f"/instances/{stored.sop_instance_uid}")
    # Full-range window: the factory's 8-bit JPEG Baseline pixels sit far below the CT window 40/400.
    window = "-896,256" if syntax == f.JPEG_BASELINE else "1024,4096"
    rendered = http.get(http.url(base + "/rendered"), params={"accept": "image/png", "window": window})
    assert rendered.status_code == 200, rendered.text
    image = Image.open(io.BytesIO(rendered.content))
    assert image.size == (32, 32) and len(set(image.getdata())) > 10  # a gradient, not a blank frame
    frames = http.get(http.url(base + "/frames/1"), headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    (headers, data), = multipart_parts(frames)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={f.EXPLICIT_LE}"
    assert len(data) == 32 * 32 * (1 if syntax == f.JPEG_BASELINE else 2)


def test_unsupported_matching_key_is_ignored_with_a_warning(http, studies):
    response = http.get(http.url("/dicomweb/studies"), params={"PatientComments": "x", "PatientID": "Q1"})
    assert response.status_code == 200 and len(response.json()) == 1
    assert "PatientComments" in response.headers["Warning"]

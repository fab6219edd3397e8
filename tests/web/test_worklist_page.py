"""Worklist page in a real browser: create with the date/time pickers, list, filter, sort, edit, delete;
the item then answered by a real Modality Worklist C-FIND (DCMTK findscu -W) and moved by a real MPPS."""

from __future__ import annotations

import datetime
import re

import pytest
from playwright.sync_api import expect
from pynetdicom import AE
from pynetdicom.sop_class import ModalityPerformedProcedureStep

from tests.worklist.conftest import findscu, item_fields, mwl_port, step_fields  # noqa: F401 (fixtures)
from tests.worklist.test_mpps_scp import create_attributes
from worklist.choices import StepStatus
from worklist.models import ScheduledProcedureStep, WorklistItem
from worklist.services.items import worklist_item_create

pytestmark = pytest.mark.django_db(transaction=True)

TODAY = datetime.date.today()
TOMORROW = TODAY + datetime.timedelta(days=1)


def _names(page) -> list[str]:
    return page.locator("#worklist-table .patient-name").all_inner_texts()


def _fill_item(page, *, name: str, patient_id: str, birth: str = "1980-01-02", sex: str = "M",
               accession: str = "ACC-WL1", day: datetime.date = TOMORROW, time: str = "09:30",
               modality: str = "CT", station: str = "CT01", step_id: str = "SPS001") -> None:
    page.fill("#id_patient_name", name)
    page.fill("#id_patient_id", patient_id)
    page.fill("#id_patient_birth_date", birth)
    page.select_option("#id_patient_sex", sex)
    page.fill("#id_accession_number", accession)
    page.fill("#id_requested_procedure_id", "RP001")
    page.fill("#id_requested_procedure_description", "CT chest")
    page.fill("#id_steps-0-scheduled_procedure_step_start_date", day.isoformat())
    page.fill("#id_steps-0-scheduled_procedure_step_start_time", time)
    page.fill("#id_steps-0-modality", modality)
    page.fill("#id_steps-0-scheduled_station_ae_title", station)
    page.fill("#id_steps-0-scheduled_procedure_step_id", step_id)
    page.fill("#id_steps-0-scheduled_procedure_step_description", "Chest plain")


def test_create_list_filter_sort_edit_delete(logged_in, screenshot):
    page = logged_in
    worklist_item_create(fields=item_fields(patient_name="SMITH^JOHN", patient_id="WL-OTHER", accession_number="ACC-MR"),
                         steps=[step_fields(modality="MR", scheduled_station_ae_title="MR01",
                                            scheduled_procedure_step_start_date=TODAY)])
    page.click(".mainnav a:has-text('Worklist')")
    page.wait_for_url(re.compile(r"/worklist/$"))
    assert _names(page) == ["SMITH JOHN"]
    page.click("#worklist-new")

    # Invalid first: errors next to the fields, nothing saved.
    page.fill("#id_patient_name", "WANG^XIAOMING=王^小明")
    page.fill("#id_patient_birth_date", (TODAY + datetime.timedelta(days=3)).isoformat())
    page.fill("#id_steps-0-modality", "C T!")
    page.click("#save-button")
    assert page.locator("#id_patient_id-errors").is_visible()
    assert "future" in page.locator("#id_patient_birth_date-errors").inner_text()
    assert page.locator("#id_steps-0-modality-errors").is_visible()
    screenshot(page, "worklist-form-errors")
    assert WorklistItem.objects.count() == 1

    _fill_item(page, name="WANG^XIAOMING=王^小明", patient_id="WL001")
    assert page.locator("#id_steps-0-scheduled_procedure_step_start_date").get_attribute("type") == "date"
    assert page.locator("#id_steps-0-scheduled_procedure_step_start_time").get_attribute("type") == "time"
    screenshot(page, "worklist-form")
    page.click("#save-button")
    page.wait_for_url(re.compile(r"/worklist/\?patient_id=WL001$"))
    assert page.locator(".message-success").is_visible()
    row = page.locator("tr.worklist-row")
    assert row.count() == 1
    assert row.locator(".patient-name").inner_text() == "王小明 (WANG XIAOMING)"
    assert row.locator("td").first.inner_text() == f"{TOMORROW.isoformat()} 09:30"
    assert row.locator(".step-status").inner_text() == "Scheduled"
    item = WorklistItem.objects.get(patient_id="WL001")
    step = item.steps.get()
    assert (item.patient_name_ideographic, item.patient_birth_date, item.patient_sex) == (
        "王^小明", datetime.date(1980, 1, 2), "M")
    assert (step.scheduled_procedure_step_start_date, step.scheduled_procedure_step_start_time) == (
        TOMORROW, datetime.time(9, 30))
    assert (step.modality, step.scheduled_station_ae_title, step.scheduled_procedure_step_id) == ("CT", "CT01", "SPS001")

    # Filters: name (wildcards, contains, Chinese), accession, modality, station, quick ranges, status.
    page.goto("/worklist/")
    assert len(_names(page)) == 2
    screenshot(page, "worklist-list")
    page.fill("#f-name", "wang*")
    page.click("#search-button")
    assert _names(page) == ["王小明 (WANG XIAOMING)"]
    for query, expected in [
        ("patient_name=王", ["王小明 (WANG XIAOMING)"]),
        ("patient_name=wang+xiao", ["王小明 (WANG XIAOMING)"]),
        ("patient_name=sm?th*", ["SMITH JOHN"]),
        ("patient_id=OTHER", ["SMITH JOHN"]),
        ("accession=ACC-WL1", ["王小明 (WANG XIAOMING)"]),
        ("modality=MR", ["SMITH JOHN"]),
        ("station=CT01", ["王小明 (WANG XIAOMING)"]),
        ("range=today", ["SMITH JOHN"]),
        ("range=tomorrow", ["王小明 (WANG XIAOMING)"]),
        ("range=7days", None),
        (f"date_from={TOMORROW.isoformat()}", ["王小明 (WANG XIAOMING)"]),
        (f"date_to={TODAY.isoformat()}", ["SMITH JOHN"]),
        ("status=COMPLETED", []),
        ("status=SCHEDULED", None),
    ]:
        page.goto(f"/worklist/?{query}")
        names = _names(page)
        assert names == expected if expected is not None else len(names) == 2, (query, names)
    page.goto("/worklist/")
    page.click("#range-tomorrow")
    assert _names(page) == ["王小明 (WANG XIAOMING)"]
    assert page.locator("#f-from").input_value() == TOMORROW.isoformat()

    # Sorting by name, then reversed by a second click; paging.
    page.goto("/worklist/")
    page.click("a[data-sort=name]")
    assert _names(page)[0] == "SMITH JOHN"
    page.click("a[data-sort=name]")
    assert _names(page)[-1] == "SMITH JOHN"
    page.goto("/worklist/?per_page=25")
    assert page.locator(".pager").inner_text().startswith("Page 1 of 1")

    # Edit: new time, a second step added with the "Add a step" button.
    page.goto("/worklist/?patient_id=WL001")
    page.click(".worklist-edit")
    assert page.locator("#id_patient_birth_date").input_value() == "1980-01-02"
    assert page.locator("#id_steps-0-scheduled_procedure_step_start_time").input_value() == "09:30"
    page.fill("#id_steps-0-scheduled_procedure_step_start_time", "10:45")
    page.click("#add-step")
    page.fill("#id_steps-1-scheduled_procedure_step_start_date", TOMORROW.isoformat())
    page.fill("#id_steps-1-scheduled_procedure_step_start_time", "11:00")
    page.fill("#id_steps-1-modality", "CT")
    page.fill("#id_steps-1-scheduled_station_ae_title", "CT02")
    page.fill("#id_steps-1-scheduled_procedure_step_id", "SPS002")
    screenshot(page, "worklist-edit")
    page.click("#save-button")
    page.wait_for_url(re.compile(r"/worklist/\?patient_id=WL001$"))
    assert page.locator("tr.worklist-row .station").all_inner_texts() == ["CT02", "CT01"]  # newest date/time first
    kept = ScheduledProcedureStep.objects.get(pk=step.pk)  # same row: MPPS links survive an edit
    assert kept.scheduled_procedure_step_start_time == datetime.time(10, 45)
    assert item.steps.count() == 2

    # Edit again: remove the second step.
    page.click(".worklist-edit >> nth=0")
    page.check("#id_steps-1-DELETE")
    page.click("#save-button")
    page.wait_for_url(re.compile(r"/worklist/\?patient_id=WL001$"))
    assert page.locator("tr.worklist-row .station").all_inner_texts() == ["CT01"]
    assert list(item.steps.values_list("pk", flat=True)) == [step.pk]

    # Delete after the confirmation dialog; dismissing it first keeps the item.
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click(".worklist-delete")
    assert WorklistItem.objects.filter(pk=item.pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".worklist-delete")
    page.wait_for_url(re.compile(r"/worklist/$"))
    assert page.locator(".message-success").is_visible()
    assert _names(page) == ["SMITH JOHN"]
    assert not WorklistItem.objects.filter(pk=item.pk).exists()


def test_patient_name_with_markup_renders_as_text(logged_in):
    page = logged_in
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    hostile = "<img src=x onerror=alert(1)>"
    page.goto("/worklist/new/")
    _fill_item(page, name=hostile, patient_id="XSS1")
    page.fill("#id_requested_procedure_description", "<script>alert(2)</script>")
    page.click("#save-button")
    page.wait_for_url(re.compile(r"/worklist/\?patient_id=XSS1$"))
    row = page.locator("tr.worklist-row")
    assert row.locator(".patient-name").get_attribute("title") == hostile
    assert row.locator("img").count() == 0 and page.locator("#worklist-table script").count() == 0
    assert WorklistItem.objects.get(patient_id="XSS1").patient_name == hostile
    page.click(".worklist-edit")
    assert page.locator("#id_patient_name").input_value() == hostile
    assert dialogs == []


def test_item_created_in_the_page_is_answered_by_mwl_cfind_and_moved_by_mpps(logged_in, findscu, mwl_port,
                                                                             screenshot):
    page = logged_in
    page.goto("/worklist/new/")
    _fill_item(page, name="WANG^XIAOMING=王^小明", patient_id="MWL-1", accession="ACC-MWL", day=TODAY, time="08:15")
    page.click("#save-button")
    page.wait_for_url(re.compile(r"/worklist/\?patient_id=MWL-1$"))
    item = WorklistItem.objects.get(patient_id="MWL-1")

    sps = "ScheduledProcedureStepSequence[0]."
    proc, answers = findscu(
        "SpecificCharacterSet=ISO_IR 192", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
        "AccessionNumber", "StudyInstanceUID",
        f"{sps}Modality=CT", f"{sps}ScheduledStationAETitle=CT01",
        f"{sps}ScheduledProcedureStepStartDate={TODAY.strftime('%Y%m%d')}", f"{sps}ScheduledProcedureStepStartTime",
        f"{sps}ScheduledProcedureStepID",
    )
    assert proc.returncode == 0, proc.stderr
    assert len(answers) == 1, proc.stderr
    ds, _raw = answers[0]
    assert str(ds.PatientName) == "WANG^XIAOMING=王^小明"
    assert (ds.PatientID, ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber) == (
        "MWL-1", "19800102", "M", "ACC-MWL")
    assert ds.StudyInstanceUID == item.study_instance_uid
    step = ds.ScheduledProcedureStepSequence[0]
    assert (step.ScheduledProcedureStepStartTime[:4], step.ScheduledProcedureStepID) == ("0815", "SPS001")

    # The modality starts the procedure (MPPS N-CREATE): the page shows it in progress.
    ae = AE(ae_title="CT01")
    ae.add_requested_context(ModalityPerformedProcedureStep)
    assoc = ae.associate("127.0.0.1", mwl_port, ae_title="WORKLISTSCP")
    assert assoc.is_established
    status, _reply = assoc.send_n_create(create_attributes(item), ModalityPerformedProcedureStep,
                                         "1.2.826.0.1.3680043.8.498.99.1")
    assoc.release()
    assert status.Status == 0x0000
    page.goto("/worklist/?patient_id=MWL-1")
    assert page.locator("tr.worklist-row .step-status").inner_text() == "In progress"
    page.goto("/worklist/?status=IN+PROGRESS")
    assert _names(page) == ["王小明 (WANG XIAOMING)"]
    screenshot(page, "worklist-in-progress")
    assert item.steps.get().scheduled_procedure_step_status == StepStatus.IN_PROGRESS


def test_chinese_interface(logged_in, screenshot):
    page = logged_in
    page.select_option("#language-select", "zh-hans")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    page.goto("/worklist/")
    assert page.locator("h1").inner_text().startswith("设备工作列表")
    page.goto("/worklist/new/")
    assert page.locator("label[for=id_patient_birth_date]").inner_text().startswith("出生日期")
    assert page.locator("#id_steps-0-scheduled_procedure_step_status option:checked").inner_text() == "已预约"
    screenshot(page, "worklist-form-zh")


def test_writes_need_the_worklist_permissions(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", "", "viewer-pw-123")
    item = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    client.force_login(user)
    listing = client.get("/worklist/")
    assert listing.status_code == 200 and b"worklist-row" in listing.content
    assert b"worklist-delete" not in listing.content and b"worklist-new" not in listing.content
    assert client.get("/worklist/new/").status_code == 403
    assert client.post(f"/worklist/{item.pk}/delete/").status_code == 403
    assert client.post(f"/worklist/{item.pk}/edit/", {"patient_id": "X"}).status_code == 403
    assert WorklistItem.objects.filter(pk=item.pk, patient_id="P001").exists()
    client.logout()
    assert client.get("/worklist/").status_code == 302  # login required


def test_worklist_query_count_is_constant(client, admin_user, django_assert_max_num_queries):
    for index in range(8):
        worklist_item_create(fields=item_fields(patient_id=f"Q{index}", accession_number=f"A{index}"),
                             steps=[step_fields(), step_fields(scheduled_procedure_step_id="SPS2")])
    client.force_login(admin_user)
    with django_assert_max_num_queries(8):  # session, user, count, page (item joined): not one per row
        response = client.get("/worklist/")
    assert response.status_code == 200 and response.content.count(b'class="worklist-row"') == 16


def _post_data(*, step_pk: int | None = None, status: str = "SCHEDULED", time: str = "09:00", **item) -> dict:
    data = {"patient_name": "LI^LEI", "patient_id": "PD1", "patient_sex": "F", "accession_number": "ACC-PD1",
            "steps-TOTAL_FORMS": "1", "steps-INITIAL_FORMS": "1" if step_pk else "0", "steps-MIN_NUM_FORMS": "1",
            "steps-MAX_NUM_FORMS": "1000", "steps-0-modality": "US", "steps-0-scheduled_station_ae_title": "US01",
            "steps-0-scheduled_procedure_step_start_date": TODAY.isoformat(),
            "steps-0-scheduled_procedure_step_start_time": time, "steps-0-scheduled_procedure_step_status": status}
    if step_pk:
        data["steps-0-id"] = str(step_pk)
        data["steps-0-shown_status"] = "SCHEDULED"  # as the page showed it
    data.update(item)
    return data


def test_service_errors_are_shown_next_to_their_fields(client, admin_user):
    client.force_login(admin_user)
    taken = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    response = client.post("/worklist/new/", _post_data(study_instance_uid="1.2.abc"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["study_instance_uid"]
    response = client.post("/worklist/new/", _post_data(study_instance_uid=taken.study_instance_uid))
    assert "already uses this Study Instance UID" in str(response.context["form"].errors["study_instance_uid"])
    assert b'id="id_study_instance_uid-errors"' in response.content
    response = client.post("/worklist/new/", _post_data(patient_name="A=B=C=D"))
    assert "3 component groups" in str(response.context["form"].errors["patient_name"])
    assert WorklistItem.objects.count() == 1


def test_edit_keeps_the_status_mpps_set_while_the_form_was_open(client, admin_user):
    from worklist.services.items import steps_status_set

    client.force_login(admin_user)
    item = worklist_item_create(fields=item_fields(patient_id="PD1"), steps=[step_fields()])
    step = item.steps.get()
    assert client.get(f"/worklist/{item.pk}/edit/").status_code == 200
    steps_status_set(step_ids=[step.pk], status=StepStatus.IN_PROGRESS, allowed_from=[StepStatus.SCHEDULED])
    response = client.post(f"/worklist/{item.pk}/edit/", _post_data(step_pk=step.pk, time="11:30"))
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.scheduled_procedure_step_status == StepStatus.IN_PROGRESS  # the form showed SCHEDULED, untouched
    assert step.scheduled_procedure_step_start_time == datetime.time(11, 30)
    # A status the user does change is saved (also after a re-display for another error), and stamped.
    before = step.status_changed_at
    response = client.post(f"/worklist/{item.pk}/edit/", _post_data(step_pk=step.pk, status="DISCONTINUED",
                                                                     patient_id=""))
    assert response.status_code == 400
    assert b'name="steps-0-shown_status" value="SCHEDULED"' in response.content
    client.post(f"/worklist/{item.pk}/edit/", _post_data(step_pk=step.pk, status="DISCONTINUED"))
    step.refresh_from_db()
    assert step.scheduled_procedure_step_status == StepStatus.DISCONTINUED and step.status_changed_at > before


def test_edit_of_a_step_removed_meanwhile_is_refused(client, admin_user):
    from worklist.exceptions import ItemInvalid
    from worklist.services.items import worklist_item_edit

    item = worklist_item_create(fields=item_fields(), steps=[step_fields()])
    other = worklist_item_create(fields=item_fields(patient_id="P2"), steps=[step_fields()])
    with pytest.raises(ItemInvalid) as caught:
        worklist_item_edit(item_id=item.pk, fields={}, steps=[{"id": other.steps.get().pk, "modality": "MR"}])
    assert caught.value.errors == {"ScheduledProcedureStepSequence": {0: {"id": ["this step no longer exists"]}}}
    assert other.steps.get().modality == "CT" and item.steps.count() == 1
    client.force_login(admin_user)
    response = client.post(f"/worklist/{item.pk}/edit/", _post_data(step_pk=other.steps.get().pk))
    assert response.status_code == 400 and "no longer exists" in response.content.decode()
    assert client.post("/worklist/999999/edit/", _post_data()).status_code == 404
    assert client.post("/worklist/999999/delete/").status_code == 404

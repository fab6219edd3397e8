"""Daily django-q2 schedule of worklist housekeeping (created once, idempotent)."""

from django.db import migrations

SCHEDULE_NAME = "worklist-purge"
TASK = "worklist.tasks.worklist_items_purge_task"


def schedule_create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.get_or_create(name=SCHEDULE_NAME, defaults={"func": TASK, "schedule_type": "D", "repeats": -1})


def schedule_delete(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(schedule_create, schedule_delete)]

from django.db import migrations, models


def fill_configuration_index(apps, schema_editor):
    """The index of the latest CONFIG entry applied, for data directories
    written before the column existed (0003 filled the configuration)."""
    AppliedState = apps.get_model("consensus", "AppliedState")
    LogEntry = apps.get_model("consensus", "LogEntry")
    PersistentState = apps.get_model("consensus", "PersistentState")
    persistent = PersistentState.objects.filter(pk=1).first()
    if persistent is None:
        return
    latest = (
        LogEntry.objects.filter(type="config", index__lte=persistent.last_applied)
        .order_by("-index")
        .values_list("index", flat=True)
        .first()
    )
    if latest is not None:
        AppliedState.objects.filter(pk=1).update(configuration_index=latest)


class Migration(migrations.Migration):
    dependencies = [
        ("consensus", "0003_fill_applied_state"),
    ]

    operations = [
        migrations.AddField(
            model_name="appliedstate",
            name="configuration_index",
            field=models.PositiveBigIntegerField(default=0),
        ),
        migrations.RunPython(fill_configuration_index, migrations.RunPython.noop),
    ]

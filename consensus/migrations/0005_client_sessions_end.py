"""Client sessions with an end (consensus.sessions): entries carry the
leader's time, the applied state a session clock, and the remembered answers
(the old ClientSession table, renamed ClientAnswer) one session row per
client.

A data directory from before gets one live session per client it had
answers for, last active at 0: the state machine moves such sessions to
the first time it sees (the first entry with a timestamp), so they end a
TTL after the upgrade, not at once.
"""

from django.db import migrations, models
from django.db.models import Count, Max, Min

CHUNK = 5000


def fill_sessions(apps, schema_editor):
    ClientAnswer = apps.get_model("consensus", "ClientAnswer")
    ClientSession = apps.get_model("consensus", "ClientSession")
    rows = (
        ClientAnswer.objects.values("client_id")
        .annotate(max_seq=Max("seq"), min_seq=Min("seq"), answers=Count("id"))
        .order_by("client_id")
        .iterator(chunk_size=CHUNK)
    )
    sessions = []
    for row in rows:
        sessions.append(
            ClientSession(
                client_id=row["client_id"],
                last_active_ms=0,
                max_seq=row["max_seq"],
                min_seq=min(row["min_seq"], 0),
                answers=row["answers"],
                ended=False,
            )
        )
        if len(sessions) >= CHUNK:
            ClientSession.objects.bulk_create(sessions)
            sessions.clear()
    ClientSession.objects.bulk_create(sessions)


class Migration(migrations.Migration):
    dependencies = [
        ("consensus", "0004_appliedstate_configuration_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="logentry",
            name="timestamp_ms",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="appliedstate",
            name="session_clock_ms",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.RenameModel(old_name="ClientSession", new_name="ClientAnswer"),
        migrations.CreateModel(
            name="ClientSession",
            fields=[
                (
                    "client_id",
                    models.CharField(max_length=200, primary_key=True, serialize=False),
                ),
                ("last_active_ms", models.BigIntegerField()),
                ("max_seq", models.BigIntegerField()),
                ("min_seq", models.BigIntegerField(default=0)),
                ("answers", models.PositiveIntegerField(default=0)),
                ("ended", models.BooleanField(default=False)),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["ended", "last_active_ms"], name="session_expiry"
                    )
                ],
            },
        ),
        migrations.RunPython(fill_sessions, migrations.RunPython.noop),
    ]

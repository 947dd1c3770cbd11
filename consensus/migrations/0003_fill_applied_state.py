"""Build the applied state of a data directory from before 0002.

Such a node kept its state machine in memory and rebuilt it at every start
from the log up to last_applied, silently; this does the same once, into
the tables, by the same rules (consensus/state_machine.py).
"""

from django.db import migrations

from consensus.core.configuration import Configuration

CHUNK = 5000


def fill_applied_state(apps, schema_editor):
    LogEntry = apps.get_model("consensus", "LogEntry")
    PersistentState = apps.get_model("consensus", "PersistentState")
    AppliedState = apps.get_model("consensus", "AppliedState")
    AppliedMessage = apps.get_model("consensus", "AppliedMessage")
    ClientSession = apps.get_model("consensus", "ClientSession")
    if AppliedState.objects.exists():
        return
    state = PersistentState.objects.filter(pk=1).first()
    last_applied = state.last_applied if state else 0
    count, configuration = 0, None
    seen: set[tuple[str, int]] = set()  # once, at upgrade
    messages, sessions = [], []
    rows = (
        LogEntry.objects.filter(index__lte=last_applied)
        .order_by("index")
        .values_list("index", "term", "type", "command", "client_id", "seq")
        .iterator(chunk_size=CHUNK)
    )
    for index, term, type_, command, client_id, seq in rows:
        if type_ == "config":
            try:
                Configuration.from_json(command)
            except (ValueError, KeyError, TypeError):
                continue  # never applied as a configuration
            configuration = command
            continue
        if type_ != "command":
            continue
        if client_id is not None and seq is not None:
            if (client_id, seq) in seen:
                continue  # dissertation §6.3: applied once
            seen.add((client_id, seq))
            sessions.append(
                ClientSession(client_id=client_id, seq=seq, index=index, term=term)
            )
        count += 1
        messages.append(AppliedMessage(position=count, command=command))
        if len(messages) >= CHUNK:
            AppliedMessage.objects.bulk_create(messages)
            messages.clear()
        if len(sessions) >= CHUNK:
            ClientSession.objects.bulk_create(sessions)
            sessions.clear()
    AppliedMessage.objects.bulk_create(messages)
    ClientSession.objects.bulk_create(sessions)
    AppliedState.objects.create(pk=1, message_count=count, configuration=configuration)


class Migration(migrations.Migration):

    dependencies = [
        ("consensus", "0002_applied_state"),
    ]

    operations = [
        migrations.RunPython(fill_applied_state, migrations.RunPython.noop),
    ]

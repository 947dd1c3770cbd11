"""manage.py count: have every node log how many client messages it applied."""

from .clientcommand import SubmitCommand


class Command(SubmitCommand):
    help = (
        'Commit a "count" command: every node then logs "Count <n>", the number '
        "of client messages applied so far. Exits 0 once committed."
    )
    command_text = "count"

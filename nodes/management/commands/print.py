"""manage.py print: have every node log all client messages applied so far."""

from .clientcommand import SubmitCommand


class Command(SubmitCommand):
    help = (
        'Commit a "print" command: every node then logs "Logs [...]" with all '
        "client messages applied so far. Exits 0 once committed."
    )
    command_text = "print"

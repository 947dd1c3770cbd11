#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# The shell's code for a process stopped by SIGINT (128 + 2).
EXIT_INTERRUPTED = 130


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "raftsite.settings")
    try:
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
    except KeyboardInterrupt:
        # Ctrl-C in a command (clientcommand, addserver, ...) is one line,
        # not a traceback. runnode is not here: it becomes gunicorn.
        sys.stderr.write(
            "interrupted: a request already sent may or may not take effect\n"
        )
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()

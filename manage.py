#!/usr/bin/env python
"""Django's command-line utility."""

import os
import sys

HELP = {"help", "--help", "-h"}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if len(sys.argv) < 2 or sys.argv[1] in HELP:
        # Listing the commands needs the settings, not a secret: the development key is
        # used for it (DEBUG only), so `manage.py help` works before SECRET_KEY is set.
        os.environ.setdefault("DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Django's command-line utility for the sidecar test project.

Run it with /usr/bin/python3 (Debian's Django 3.2 lives there), e.g.
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mydb /usr/bin/python3 tests/django/manage.py migrate
"""
import os
import sys


def main():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'project.settings')
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)


if __name__ == '__main__':
    main()

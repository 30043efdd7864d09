"""The publication the sidecar's change feed follows (FEED, docs/deployment.md).

This is the migration a team adds to its own project to let the sidecar keep
histories in memory. It runs only on PostgreSQL and only creates what is
missing; the role in the sidecar's DATABASE_URL also needs REPLICATION, and
the server wal_level = logical (neither is a migration's business).

PostgreSQL 15 and later publish users_user through a column list, so password
hashes and the other private columns never enter the stream. Before 15 a
publication has no column list: leave users_user out there (the sidecar then
says "feed off" and reads histories from the database).
"""
from django.db import migrations

PUBLICATION = 'sidecar_feed'


def create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != 'postgresql' or connection.pg_version < 150000:
        return
    with connection.cursor() as cursor:
        cursor.execute('SELECT 1 FROM pg_publication WHERE pubname = %s', [PUBLICATION])
        if cursor.fetchone() is None:
            cursor.execute(
                'CREATE PUBLICATION %s FOR TABLE chat_message, chat_fileattachment, '
                'users_user (id, email, full_name, user_type, is_active)' % PUBLICATION)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == 'postgresql':
        with schema_editor.connection.cursor() as cursor:
            cursor.execute('DROP PUBLICATION IF EXISTS %s' % PUBLICATION)


class Migration(migrations.Migration):
    dependencies = [
        ('chat', '0001_initial'),
        ('users', '0001_initial'),
    ]
    operations = [migrations.RunPython(create, drop)]

"""python3 manage.py admin_edit <action> <id> [value]

What an administrator does through Django's admin or shell, through the ORM:
  edit_message <id> <content>    Message.save() with new content
  delete_message <id>            Message.delete() (its attachment goes with it)
  rename_user <id> <full_name>   User.save() with a new full_name
No channel-layer event is sent: only a history read afterwards shows it.
"""
from django.core.management.base import BaseCommand, CommandError

from chat.models import Message
from users.models import User


class Command(BaseCommand):
    help = 'Edit rows through the ORM as an administrator would.'

    def add_arguments(self, parser):
        parser.add_argument('action', choices=['edit_message', 'delete_message', 'rename_user'])
        parser.add_argument('id', type=int)
        parser.add_argument('value', nargs='?', default='')

    def handle(self, *args, action, id, value, **options):
        try:
            if action == 'edit_message':
                message = Message.objects.get(pk=id)
                message.content = value
                message.save(update_fields=['content'])
            elif action == 'delete_message':
                Message.objects.get(pk=id).delete()
            else:
                user = User.objects.get(pk=id)
                user.full_name = value
                user.save(update_fields=['full_name'])
        except (Message.DoesNotExist, User.DoesNotExist) as e:
            raise CommandError(str(e))

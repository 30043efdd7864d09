"""python3 manage.py mint_tokens 3 5 7

Prints one JSON object {"3": {"access": "...", "refresh": "..."}, ...} minted by
SimpleJWT itself (RefreshToken.for_user and its .access_token), so the tokens carry
exactly the claims and signature the project's SIMPLE_JWT settings produce.
"""
import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework_simplejwt.tokens import RefreshToken


class Command(BaseCommand):
    help = 'Print SimpleJWT access/refresh tokens for the given user ids as one JSON object.'

    def add_arguments(self, parser):
        parser.add_argument('user_ids', nargs='+', type=int)

    def handle(self, *args, **options):
        User = get_user_model()
        out = {}
        for uid in options['user_ids']:
            try:
                user = User.objects.get(pk=uid)
            except User.DoesNotExist:
                raise CommandError('user %d does not exist' % uid)
            refresh = RefreshToken.for_user(user)
            out[str(uid)] = {'access': str(refresh.access_token), 'refresh': str(refresh)}
        self.stdout.write(json.dumps(out))

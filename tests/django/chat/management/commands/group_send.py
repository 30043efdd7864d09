"""python3 manage.py group_send <group> '<json object>'

Sends one event to a Channels group through the configured channel layer, as
the call service does for incoming_call, call_ended_notification and
call_ending_notification (no REST endpoint here produces those), e.g.

    manage.py group_send user_5_notifications '{"type": "call_ending_notification", "data": {"minutes_left": 1}}'

With --stdin it sends one event per input line `<group> <json object>` and
answers each with a line `ok` or `error: <reason>`, so a test can send many
events, in order, from one process.
"""
import asyncio
import json
import sys

from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.core.management.base import BaseCommand, CommandError


def parse_event(text):
    try:
        event = json.loads(text)
    except json.JSONDecodeError as e:
        raise CommandError(f'event is not JSON: {e}')
    if not isinstance(event, dict) or not isinstance(event.get('type'), str):
        raise CommandError('event must be a JSON object with a string "type"')
    return event


class Command(BaseCommand):
    help = 'Send one event (a JSON object with a "type") to a channel layer group.'

    def add_arguments(self, parser):
        parser.add_argument('group', nargs='?')
        parser.add_argument('event', nargs='?', help='JSON object, e.g. {"type": "incoming_call", ...}')
        parser.add_argument('--stdin', action='store_true',
                            help='read "<group> <json>" lines from stdin, answer "ok" or "error: ..." per line')

    def handle(self, *args, **options):
        layer = get_channel_layer()
        # A process-local layer would deliver to nobody: say so instead.
        if layer is None or isinstance(layer, InMemoryChannelLayer):
            raise CommandError('the channel layer is in-memory: set CHANNEL_LAYER=redis (and REDIS_URL, '
                               'CHANNEL_LAYER_PREFIX as the servers have them)')
        if options['stdin']:
            if options['group'] or options['event']:
                raise CommandError('--stdin takes no group or event arguments')
            asyncio.run(self.serve(layer))
            return
        if not options['group'] or not options['event']:
            raise CommandError('usage: group_send <group> <json object>  (or --stdin)')
        asyncio.run(layer.group_send(options['group'], parse_event(options['event'])))

    async def serve(self, layer):
        loop = asyncio.get_running_loop()
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            line = line.strip()
            if not line:
                continue
            group, _, text = line.partition(' ')
            try:
                await layer.group_send(group, parse_event(text))
                answer = 'ok'
            except Exception as e:  # one bad line must not end the session
                answer = 'error: ' + ' '.join(str(e).split())
            self.stdout.write(answer)
            self.stdout.flush()

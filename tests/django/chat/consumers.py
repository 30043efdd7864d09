"""The reference consumers: the Python behaviour the Go sidecar replaces.
ChatConsumer is PROTOCOL.md sections 4-7, ConversationListConsumer section 10,
NotificationConsumer section 11. Where PROTOCOL.md lists a Divergence, this file
does what the Python original did; the one exception is `typing`, handled as in 5.3.
"""
import base64
import json
import logging

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db.models import Q
from django.utils import timezone

from listener.models import ListenerBlockedTalker

from .models import Conversation, FileAttachment, Message

logger = logging.getLogger(__name__)

BLOCKED_TEXT = 'You cannot message this user because they have blocked you or you have blocked them'
BLOCKED_FILE = 'You cannot send files to this user because they have blocked you or you have blocked them'


class SaveError(Exception):
    """A refusal whose text goes to the client as an error frame."""


def message_dict(message):
    """The message object of PROTOCOL.md section 6."""
    sender = message.sender
    attachment = None
    try:
        fa = message.file_attachment
    except FileAttachment.DoesNotExist:
        fa = None
    if fa is not None:
        attachment = {
            'id': fa.id,
            'filename': fa.filename,
            'file_url': f"{settings.PUBLIC_BASE_URL}{fa.file.url}",
            'file_size': fa.file_size,
            'file_type': fa.file_type,
        }
    return {
        'id': message.id,
        'conversation': message.conversation_id,
        'sender': {
            'id': sender.id,
            'email': sender.email,
            'full_name': sender.full_name or sender.email,
            'user_type': sender.user_type,
        },
        'content': message.content,
        'message_type': message.message_type,
        'created_at': message.created_at.isoformat(),
        'is_read': message.is_read,
        'file_attachment': attachment,
    }


def is_blocked(conversation):
    return ListenerBlockedTalker.objects.filter(
        listener_id=conversation.listener_id, talker_id=conversation.talker_id).exists()


class ChatConsumer(AsyncWebsocketConsumer):
    joined = False

    async def connect(self):
        self.conversation_id = self.scope['url_route']['kwargs']['conversation_id']
        self.room_group_name = f'chat_{self.conversation_id}'
        self.user = self.scope.get('user')

        if not self.user or self.user.is_anonymous:
            await self.close(code=4001)
            return

        conversation = await self.get_conversation()
        if not conversation:
            await self.close(code=4004)
            return

        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        self.joined = True
        await self.accept()

        await self.send(text_data=json.dumps({
            'type': 'connection_established',
            'message': 'Connected to chat',
        }))
        await self.send(text_data=json.dumps({
            'type': 'api_info',
            'endpoint': f'/api/chat/conversations/{self.conversation_id}/upload_file/',
            'method': 'POST',
            'description': 'Upload image or file to conversation',
            'content_type': 'multipart/form-data',
            'parameters': {
                'file': 'Required - The image or file to upload',
                'content': 'Optional - Message description',
            },
            'headers': {'Authorization': 'Bearer YOUR_JWT_TOKEN'},
            'example_url': f'{settings.PUBLIC_BASE_URL}/api/chat/conversations/{self.conversation_id}/upload_file/',
            'message': 'Use the endpoint above to upload files. Files will be automatically broadcasted '
                       'to all connected users.',
        }))
        messages = await self.get_conversation_messages()
        await self.send(text_data=json.dumps({
            'type': 'conversation_history',
            'messages': messages,
            'count': len(messages),
            'message': f'Loaded {len(messages)} previous message(s)',
        }))

    async def disconnect(self, close_code):
        if self.joined:
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    # No bytes_data parameter, as in the original: a binary frame raises TypeError
    # and the connection is closed with 1011.
    async def receive(self, text_data):
        try:
            data = json.loads(text_data)
            message_type = data.get('type')

            if message_type in ('connection_established', 'new_message', 'read_receipt'):
                return
            if message_type == 'chat_message':
                await self.handle_chat_message(data)
            elif message_type == 'file_message':
                await self.handle_file_message(data)
            elif message_type == 'typing':
                await self.handle_typing(data)
            elif message_type == 'mark_read':
                await self.handle_mark_read()
            else:
                await self.send_error(f'Unknown message type: {message_type}')
        except json.JSONDecodeError:
            await self.send_error('Invalid JSON')
        except Exception as e:  # the original sent any exception text to the client
            logger.exception('receive failed')
            await self.send_error(str(e))

    async def send_error(self, text):
        await self.send(text_data=json.dumps({'type': 'error', 'message': text}))

    # ---- client frames -------------------------------------------------

    async def handle_chat_message(self, data):
        content = data.get('message', '')
        if not content:
            await self.send_error('Message content is required')
            return
        if await self.check_if_blocked():
            await self.send_error(BLOCKED_TEXT)
            return
        try:
            message = await self.save_message(content)
        except SaveError as e:
            await self.send_error(str(e))
            return
        await self.channel_layer.group_send(self.room_group_name, {
            'type': 'chat_message',
            'message': message,
        })

    async def handle_file_message(self, data):
        file_data = data.get('file')
        filename = data.get('filename')
        caption = data.get('message', '')
        if not file_data or not filename:
            await self.send_error('File data and filename are required')
            return
        if await self.check_if_blocked():
            await self.send_error(BLOCKED_FILE)
            return
        try:
            message = await self.save_file_message(file_data, filename, caption)
        except SaveError as e:
            await self.send_error(str(e))
            return
        await self.channel_layer.group_send(self.room_group_name, {
            'type': 'chat_message',
            'message': message,
        })

    async def handle_typing(self, data):
        if await self.check_if_blocked():
            return
        await self.channel_layer.group_send(self.room_group_name, {
            'type': 'typing_indicator',
            'user_id': self.user.id,
            'user_email': self.user.email,
            'is_typing': data.get('is_typing', False),
        })

    async def handle_mark_read(self):
        await self.mark_messages_read()
        await self.channel_layer.group_send(self.room_group_name, {
            'type': 'messages_read',
            'user_id': self.user.id,
        })

    # ---- group events --------------------------------------------------

    async def chat_message(self, event):
        messages = await self.get_conversation_messages()
        await self.send(text_data=json.dumps({
            'type': 'new_message',
            'messages': messages,
            'count': len(messages),
            'latest_message': event['message'],
        }))
        targets = await self.conversation_update_targets()
        for user_id, conversation_id in targets:
            await self.channel_layer.group_send(f'user_{user_id}_conversations', {
                'type': 'conversation_update',
                'conversation_id': conversation_id,
            })

    async def typing_indicator(self, event):
        if event['user_id'] != self.user.id:
            await self.send(text_data=json.dumps({
                'type': 'typing',
                'user_id': event['user_id'],
                'user_email': event['user_email'],
                'is_typing': event['is_typing'],
            }))

    async def messages_read(self, event):
        if event['user_id'] != self.user.id:
            await self.send(text_data=json.dumps({
                'type': 'read_receipt',
                'user_id': event['user_id'],
            }))

    # ---- database ------------------------------------------------------

    @database_sync_to_async
    def get_conversation(self):
        try:
            conversation = Conversation.objects.get(id=self.conversation_id)
        except Conversation.DoesNotExist:
            return None
        if is_blocked(conversation):
            return None
        if self.user.id not in (conversation.listener_id, conversation.talker_id):
            return None
        return conversation

    @database_sync_to_async
    def check_if_blocked(self):
        try:
            conversation = Conversation.objects.get(id=self.conversation_id)
        except Conversation.DoesNotExist:
            return False
        return is_blocked(conversation)

    @database_sync_to_async
    def get_conversation_messages(self):
        messages = (Message.objects.filter(conversation_id=self.conversation_id)
                    .select_related('sender', 'file_attachment')
                    .order_by('-created_at', '-id'))
        return [message_dict(m) for m in messages]

    def _conversation_for_save(self, blocked_text):
        try:
            conversation = Conversation.objects.get(id=self.conversation_id)
        except Conversation.DoesNotExist as e:
            raise SaveError(str(e))
        if is_blocked(conversation):
            raise SaveError(blocked_text)
        return conversation

    @database_sync_to_async
    def save_message(self, content):
        conversation = self._conversation_for_save(BLOCKED_TEXT)
        try:
            message = Message.objects.create(conversation=conversation, sender=self.user,
                                             content=content, message_type='text')
        except ValidationError as e:
            raise SaveError(e.messages[0])
        conversation.last_message_at = timezone.now()
        conversation.save()
        return message_dict(Message.objects.select_related('sender').get(pk=message.pk))

    @database_sync_to_async
    def save_file_message(self, file_data, filename, caption):
        conversation = self._conversation_for_save(BLOCKED_FILE)
        try:
            decoded = base64.b64decode(file_data)
        except Exception:
            raise SaveError('Invalid file data')
        try:
            message = Message.objects.create(conversation=conversation, sender=self.user,
                                             content=caption or '', message_type='file')
        except ValidationError as e:
            raise SaveError(e.messages[0])
        attachment = FileAttachment(message=message, filename=filename, file_size=len(decoded), file_type='')
        attachment.file.save(filename, ContentFile(decoded), save=True)
        conversation.last_message_at = timezone.now()
        conversation.save()
        return message_dict(Message.objects.select_related('sender', 'file_attachment').get(pk=message.pk))

    @database_sync_to_async
    def mark_messages_read(self):
        Message.objects.filter(conversation_id=self.conversation_id, is_read=False).exclude(
            sender=self.user).update(is_read=True)

    @database_sync_to_async
    def conversation_update_targets(self):
        try:
            conversation = Conversation.objects.get(id=self.conversation_id)
        except Conversation.DoesNotExist:
            return []
        if is_blocked(conversation):
            return []
        if self.user.id not in (conversation.listener_id, conversation.talker_id):
            return []
        return [(conversation.talker_id, conversation.id), (conversation.listener_id, conversation.id)]


def display_name(user):
    return user.full_name or user.email


def authenticated_user(scope):
    """scope['user'] when it is a real user, else None. Touching the user of a
    token without the user id claim raises (chat/middleware.py); the list and
    notification consumers catch that here, so it is refused like any bad token."""
    try:
        user = scope.get('user')
        if not user or user.is_anonymous:
            return None
        return user
    except Exception:
        logger.exception('websocket authentication failed')
        return None


def conversation_item(conversation, user):
    """One <item> of PROTOCOL.md section 10, with the original's two queries
    per conversation: the latest message, then the message count."""
    last_message = conversation.messages.order_by('-created_at').first()
    total_messages = conversation.messages.count()
    listener, talker = conversation.listener, conversation.talker
    other = talker if conversation.listener_id == user.id else listener
    if last_message:
        preview = last_message.content[:50]
        sender_id = last_message.sender_id
    else:
        preview = ''
        sender_id = conversation.talker_id if conversation.initial_message else None
    return {
        'id': conversation.id,
        'listener_id': listener.id,
        'listener_email': listener.email,
        'listener_name': display_name(listener),
        'talker_id': talker.id,
        'talker_email': talker.email,
        'talker_name': display_name(talker),
        'other_user_id': other.id,
        'other_user_email': other.email,
        'other_user_name': display_name(other),
        'status': conversation.status,
        'initial_message': conversation.initial_message,
        'last_message_preview': preview,
        'last_message_sender_id': sender_id,
        'last_message_at': (conversation.last_message_at or conversation.created_at).isoformat(),
        'total_messages': total_messages,
        'created_at': conversation.created_at.isoformat(),
    }


class ConversationListConsumer(AsyncWebsocketConsumer):
    """ws/conversations/: the user's conversation list, sent again on every
    conversation_update event of group user_<id>_conversations."""
    group_name = None

    async def connect(self):
        self.user = authenticated_user(self.scope)
        if self.user is None:
            await self.close(code=4001)
            return
        self.group_name = f'user_{self.user.id}_conversations'
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

        await self.send(text_data=json.dumps({
            'type': 'connection_established',
            'message': 'Connected to conversation list updates',
        }))
        conversations = await self.get_user_conversations()
        await self.send(text_data=json.dumps({
            'type': 'conversation_list',
            'conversations': conversations,
            'count': len(conversations),
            'message': f'You have {len(conversations)} conversation(s)',
        }))

    async def disconnect(self, close_code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    # Text is ignored; no bytes_data parameter, as in the original: a binary
    # frame raises TypeError and the connection is closed with 1011.
    async def receive(self, text_data):
        pass

    async def conversation_update(self, event):
        conversations = await self.get_user_conversations()
        conversation_id = event.get('conversation_id')
        await self.send(text_data=json.dumps({
            'type': 'conversation_list_updated',
            'conversations': conversations,
            'count': len(conversations),
            'latest_conversation_id': conversation_id,
            'message': f'Conversation {conversation_id} updated with new message',
        }))

    @database_sync_to_async
    def get_user_conversations(self):
        # Ties beyond these two keys are left to the database, as in the original.
        conversations = (Conversation.objects.filter(Q(listener=self.user) | Q(talker=self.user))
                         .select_related('listener', 'talker')
                         .order_by('-last_message_at', '-created_at'))
        return [conversation_item(c, self.user) for c in conversations]


class NotificationConsumer(AsyncWebsocketConsumer):
    """ws/notifications/: relays the events of group user_<id>_notifications
    (conversation requests and answers from the REST API, calls from the call
    service). An event missing a key it reads raises KeyError, one of another
    type raises "No handler": either closes the connection with 1011."""
    group_name = None

    async def connect(self):
        self.user = authenticated_user(self.scope)
        if self.user is None:
            await self.close(code=4001)
            return
        self.group_name = f'user_{self.user.id}_notifications'
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()

        await self.send(text_data=json.dumps({
            'type': 'connection_established',
            'message': 'Connected to notifications',
        }))
        if self.user.user_type == 'listener':
            pending = await self.get_pending_conversations()
            if pending:
                await self.send(text_data=json.dumps({
                    'type': 'pending_conversations_list',
                    'conversations': pending,
                    'count': len(pending),
                    'message': f'You have {len(pending)} pending conversation(s)',
                }))

    async def disconnect(self, close_code):
        if self.group_name:
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    # As in ConversationListConsumer: text ignored, binary crashes (1011).
    async def receive(self, text_data):
        pass

    async def conversation_request(self, event):
        await self.send(text_data=json.dumps({
            'type': 'conversation_request',
            'conversation_id': event['conversation_id'],
            'talker_id': event['talker_id'],
            'talker_email': event['talker_email'],
            'talker_name': event['talker_name'],
            'initial_message': event['initial_message'],
            'created_at': event['created_at'],
            'message': f"New conversation request from {event['talker_name']}",
        }))

    async def conversation_accepted(self, event):
        await self.send(text_data=json.dumps({
            'type': 'conversation_accepted',
            'conversation_id': event['conversation_id'],
            'listener_id': event['listener_id'],
            'listener_email': event['listener_email'],
            'listener_name': event['listener_name'],
            'accepted_at': event['accepted_at'],
            'message': f"Your conversation request was accepted by {event['listener_name']}",
        }))

    async def conversation_rejected(self, event):
        await self.send(text_data=json.dumps({
            'type': 'conversation_rejected',
            'conversation_id': event['conversation_id'],
            'listener_id': event['listener_id'],
            'listener_email': event['listener_email'],
            'listener_name': event['listener_name'],
            'rejected_at': event['rejected_at'],
            'message': f"Your conversation request was rejected by {event['listener_name']}",
        }))

    async def incoming_call(self, event):
        await self.send(text_data=json.dumps({
            'type': 'incoming_call',
            'message': f"Incoming call from {event['talker_name']}",
            'session_id': event['session_id'],
            'call_package_id': event['call_package_id'],
            'talker': {
                'id': event['talker_id'],
                'email': event['talker_email'],
                'full_name': event['talker_name'],
                'profile_image': event.get('talker_image'),
            },
            'call_type': event['call_type'],
            'total_minutes': event['total_minutes'],
            'created_at': event['created_at'],
        }))

    async def call_ended_notification(self, event):
        await self.send(text_data=json.dumps({
            'type': 'call_ended',
            'message': event['message'],
            'session_id': event['session_id'],
            'duration_minutes': event['duration_minutes'],
            'ended_by': event['ended_by'],
            'ended_by_name': event.get('ended_by_name'),
            'timestamp': event['timestamp'],
        }))

    async def call_ending_notification(self, event):
        await self.send(text_data=json.dumps(event['data']))

    @database_sync_to_async
    def get_pending_conversations(self):
        # The original model's Meta.ordering, written out: adding it would need a migration.
        conversations = (Conversation.objects.filter(listener=self.user, status='pending')
                         .select_related('talker')
                         .order_by('-last_message_at', '-created_at'))
        return [{
            'id': c.id,
            'talker_id': c.talker.id,
            'talker_email': c.talker.email,
            'talker_name': display_name(c.talker),
            'initial_message': c.initial_message,
            'created_at': c.created_at.isoformat(),
        } for c in conversations]

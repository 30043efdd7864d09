from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from users.models import User

from .consumers import display_name
from .models import Conversation, FileAttachment, Message
from .serializers import ConversationSerializer, MessageSerializer


def notify(group, event):
    async_to_sync(get_channel_layer().group_send)(group, event)


@api_view(['POST'])
def create_conversation(request):
    """POST /api/chat/conversations/ {"listener_id": N, "initial_message": "..."} by a talker:
    201 and a conversation_request to the listener when created, 200 when the pair had one
    (a pending one takes the new initial_message)."""
    if request.user.user_type != 'talker':
        return Response({'error': 'Only talkers can create conversations'}, status=status.HTTP_403_FORBIDDEN)
    listener_id = request.data.get('listener_id')
    try:
        listener = User.objects.get(pk=int(listener_id), user_type='listener')
    except (TypeError, ValueError):
        return Response({'error': 'listener_id must be an integer'}, status=status.HTTP_400_BAD_REQUEST)
    except User.DoesNotExist:
        return Response({'error': 'Listener not found'}, status=status.HTTP_404_NOT_FOUND)
    initial_message = request.data.get('initial_message', '') or ''

    conversation, created = Conversation.objects.get_or_create(
        listener=listener, talker=request.user,
        defaults={'status': 'pending', 'initial_message': initial_message})
    if not created and conversation.status == 'pending':
        conversation.initial_message = initial_message
        conversation.save()
    if created:
        notify(f'user_{listener.id}_notifications', {
            'type': 'conversation_request',
            'conversation_id': conversation.id,
            'talker_id': request.user.id,
            'talker_email': request.user.email,
            'talker_name': display_name(request.user),
            'initial_message': conversation.initial_message,
            'created_at': conversation.created_at.isoformat(),
        })
    return Response(ConversationSerializer(conversation).data,
                    status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _answer(request, pk, verb):
    """accept or reject, by the conversation's listener, of a pending conversation."""
    conversation = get_object_or_404(Conversation.objects.select_related('listener', 'talker'), pk=pk)
    if request.user.id != conversation.listener_id:
        return Response({'error': f'Only the listener can {verb} this conversation'},
                        status=status.HTTP_403_FORBIDDEN)
    if conversation.status != 'pending':
        return Response({'error': f'Cannot {verb} a {conversation.status} conversation'},
                        status=status.HTTP_400_BAD_REQUEST)
    listener = conversation.listener
    event = {
        'conversation_id': conversation.id,
        'listener_id': listener.id,
        'listener_email': listener.email,
        'listener_name': display_name(listener),
    }
    if verb == 'accept':
        conversation.status = 'active'
        conversation.accepted_at = timezone.now()
        event.update(type='conversation_accepted', accepted_at=conversation.accepted_at.isoformat())
    else:
        conversation.status = 'rejected'
        conversation.rejected_at = timezone.now()
        event.update(type='conversation_rejected', rejected_at=conversation.rejected_at.isoformat())
    conversation.save()
    notify(f'user_{conversation.talker_id}_notifications', event)
    return Response(ConversationSerializer(conversation).data)


@api_view(['POST'])
def accept_conversation(request, pk):
    """POST /api/chat/conversations/<id>/accept/: conversation_accepted to the talker."""
    return _answer(request, pk, 'accept')


@api_view(['POST'])
def reject_conversation(request, pk):
    """POST /api/chat/conversations/<id>/reject/: conversation_rejected to the talker."""
    return _answer(request, pk, 'reject')


@api_view(['POST'])
@parser_classes([MultiPartParser, FormParser])
def upload_file(request, pk):
    """POST /api/chat/conversations/<id>/upload_file/ (multipart: file, optional content)."""
    conversation = get_object_or_404(Conversation, pk=pk)
    if request.user.id not in (conversation.listener_id, conversation.talker_id):
        return Response({'error': 'You are not a participant in this conversation'},
                        status=status.HTTP_403_FORBIDDEN)
    upload = request.FILES.get('file')
    if upload is None:
        return Response({'error': 'No file provided'}, status=status.HTTP_400_BAD_REQUEST)
    content = request.data.get('content', '') or ''
    try:
        message = Message.objects.create(conversation=conversation, sender=request.user,
                                         content=content, message_type='file')
    except ValidationError as e:
        return Response({'error': e.messages[0]}, status=status.HTTP_400_BAD_REQUEST)
    FileAttachment.objects.create(message=message, file=upload, filename=upload.name,
                                  file_size=upload.size, file_type=upload.content_type or '')
    conversation.last_message_at = timezone.now()
    conversation.save(update_fields=['last_message_at', 'updated_at'])

    message = Message.objects.select_related('sender', 'file_attachment').get(pk=message.pk)
    data = MessageSerializer(message, context={'request': request}).data
    notify(f"chat_{conversation.id}", {"type": "chat_message", "message": data})
    return Response(data, status=status.HTTP_201_CREATED)


@api_view(['POST'])
def mark_read(request, pk):
    """POST /api/chat/conversations/<id>/mark_read/: marks the others' messages read.

    As the app's REST API does it: no channel-layer event is sent, so only a
    history read afterwards shows it.
    """
    conversation = get_object_or_404(Conversation, pk=pk)
    if request.user.id not in (conversation.listener_id, conversation.talker_id):
        return Response({'error': 'You are not a participant in this conversation'},
                        status=status.HTTP_403_FORBIDDEN)
    updated = Message.objects.filter(conversation=conversation, is_read=False).exclude(
        sender=request.user).update(is_read=True)
    return Response({'marked_read': updated})

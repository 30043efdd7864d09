from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from django.utils import timezone
from rest_framework import status
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from .models import Conversation, FileAttachment, Message
from .serializers import MessageSerializer


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
    async_to_sync(get_channel_layer().group_send)(
        f"chat_{conversation.id}", {"type": "chat_message", "message": data})
    return Response(data, status=status.HTTP_201_CREATED)

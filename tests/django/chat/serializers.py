from rest_framework import serializers

from users.models import User

from .models import Conversation, FileAttachment, Message


class SenderSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ('id', 'email', 'full_name', 'user_type')


class FileAttachmentSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = FileAttachment
        fields = ('id', 'filename', 'file_url', 'file_size', 'file_type')

    def get_file_url(self, obj):
        if not obj.file:
            return None
        request = self.context.get('request')
        if request is not None:
            return request.build_absolute_uri(obj.file.url)
        return obj.file.url


class MessageSerializer(serializers.ModelSerializer):
    sender = SenderSerializer(read_only=True)
    file_attachment = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = ('id', 'conversation', 'sender', 'content', 'message_type', 'created_at', 'is_read',
                  'file_attachment')

    def get_file_attachment(self, obj):
        try:
            attachment = obj.file_attachment
        except FileAttachment.DoesNotExist:
            return None
        return FileAttachmentSerializer(attachment, context=self.context).data


class ConversationSerializer(serializers.ModelSerializer):
    """What the conversation endpoints (create, accept, reject) answer."""
    listener = SenderSerializer(read_only=True)
    talker = SenderSerializer(read_only=True)

    class Meta:
        model = Conversation
        fields = ('id', 'listener', 'talker', 'status', 'initial_message', 'created_at', 'updated_at',
                  'accepted_at', 'rejected_at', 'last_message_at')

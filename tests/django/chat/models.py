from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class Conversation(models.Model):
    STATUS_CHOICES = (
        ('pending', 'Pending'),
        ('active', 'Active'),
        ('rejected', 'Rejected'),
        ('closed', 'Closed'),
    )

    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                 related_name='listener_conversations')
    talker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                               related_name='talker_conversations')
    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default='pending')
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    last_message_at = models.DateTimeField(null=True, blank=True)
    initial_message = models.TextField(blank=True)

    class Meta:
        unique_together = ('listener', 'talker')

    def __str__(self):
        return 'Conversation %s (%s)' % (self.pk, self.status)


class Message(models.Model):
    MESSAGE_TYPE_CHOICES = (
        ('text', 'Text'),
        ('file', 'File'),
    )

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name='messages')
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    content = models.TextField(blank=True)
    message_type = models.CharField(max_length=10, choices=MESSAGE_TYPE_CHOICES, default='text')
    is_read = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def save(self, *args, **kwargs):
        if self._state.adding:
            conversation = self.conversation
            if conversation.status not in ('active', 'pending'):
                raise ValidationError(
                    f"Cannot send messages in a {conversation.get_status_display()} conversation")
            if conversation.status == 'pending' and self.sender_id != conversation.talker_id:
                raise ValidationError("Only the talker can send messages in a pending conversation")
        super().save(*args, **kwargs)

    def __str__(self):
        return 'Message %s' % self.pk


class FileAttachment(models.Model):
    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name='file_attachment')
    file = models.FileField(upload_to='chat_files/%Y/%m/%d/')
    filename = models.CharField(max_length=255)
    file_size = models.BigIntegerField()
    file_type = models.CharField(max_length=100, blank=True)
    uploaded_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.filename

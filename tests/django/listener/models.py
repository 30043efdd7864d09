from django.conf import settings
from django.db import models


class ListenerBlockedTalker(models.Model):
    listener = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                 related_name='blocked_talkers')
    talker = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                               related_name='blocked_by_listeners')
    blocked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        unique_together = ('listener', 'talker')

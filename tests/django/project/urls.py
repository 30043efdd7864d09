from django.conf import settings
from django.urls import path, re_path
from django.views.static import serve
from rest_framework_simplejwt.views import TokenObtainPairView

from chat.views import accept_conversation, create_conversation, mark_read, reject_conversation, upload_file
from listener.views import block_talker, unblock_talker

urlpatterns = [
    path('api/token/', TokenObtainPairView.as_view(), name='token_obtain_pair'),
    path('api/listener/profiles/block_talker/', block_talker, name='block_talker'),
    path('api/listener/profiles/unblock_talker/', unblock_talker, name='unblock_talker'),
    path('api/chat/conversations/', create_conversation, name='create_conversation'),
    path('api/chat/conversations/<int:pk>/accept/', accept_conversation, name='accept_conversation'),
    path('api/chat/conversations/<int:pk>/reject/', reject_conversation, name='reject_conversation'),
    path('api/chat/conversations/<int:pk>/upload_file/', upload_file, name='upload_file'),
    path('api/chat/conversations/<int:pk>/mark_read/', mark_read, name='mark_read'),
    # The test project serves uploaded files itself.
    re_path(r'^%s(?P<path>.*)$' % settings.MEDIA_URL.lstrip('/'), serve, {'document_root': settings.MEDIA_ROOT}),
]

from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response

from users.models import User

from .models import ListenerBlockedTalker


def _talker(request):
    talker_id = request.data.get('talker_id')
    if talker_id in (None, ''):
        return None, Response({'error': 'talker_id is required'}, status=status.HTTP_400_BAD_REQUEST)
    try:
        return User.objects.get(pk=int(talker_id)), None
    except (TypeError, ValueError):
        return None, Response({'error': 'talker_id must be an integer'}, status=status.HTTP_400_BAD_REQUEST)
    except User.DoesNotExist:
        return None, Response({'error': 'Talker not found'}, status=status.HTTP_404_NOT_FOUND)


@api_view(['POST'])
def block_talker(request):
    """POST /api/listener/profiles/block_talker/ {"talker_id": N}: the listener is request.user."""
    talker, error = _talker(request)
    if error is not None:
        return error
    _, created = ListenerBlockedTalker.objects.get_or_create(listener=request.user, talker=talker)
    return Response({'message': 'Talker blocked successfully', 'created': created})


@api_view(['POST'])
def unblock_talker(request):
    """POST /api/listener/profiles/unblock_talker/ {"talker_id": N}."""
    talker, error = _talker(request)
    if error is not None:
        return error
    deleted, _ = ListenerBlockedTalker.objects.filter(listener=request.user, talker=talker).delete()
    return Response({'message': 'Talker unblocked successfully', 'deleted': deleted})

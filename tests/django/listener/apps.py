from django.apps import AppConfig


class ListenerConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'listener'

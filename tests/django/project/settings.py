"""Settings of the sidecar's reference Django project.

Everything that differs between test runs comes from the environment:

DATABASE_URL                  postgres://user[:password]@host:port/name  or  sqlite:///abs/path/db.sqlite3
                              (default: sqlite next to manage.py)
SECRET_KEY                    default: a fixed test string
SIMPLE_JWT_ALGORITHM          default HS256
SIMPLE_JWT_SIGNING_KEY        default SECRET_KEY (PEM private key for RS*/ES*)
SIMPLE_JWT_VERIFYING_KEY      PEM public key for RS*/ES*, default ''
ACCESS_TOKEN_LIFETIME_SECONDS default 3600
ALLOWED_HOSTS                 comma list, default '*'
MEDIA_ROOT, MEDIA_URL         default <project>/media, /media/
PUBLIC_BASE_URL               base URL shown in api_info frames (default http://127.0.0.1:8000)
CHANNEL_LAYER                 'memory' (default) or 'redis'
REDIS_URL                     comma list of redis URLs (default redis://127.0.0.1:6379)
CHANNEL_LAYER_PREFIX          default 'asgi'
"""
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get('SECRET_KEY', 'sidecar-test-secret-key-not-for-production')
DEBUG = os.environ.get('DEBUG', '') not in ('', '0', 'false', 'False')
ALLOWED_HOSTS = [h.strip() for h in os.environ.get('ALLOWED_HOSTS', '*').split(',') if h.strip()]

INSTALLED_APPS = [
    'daphne',
    'django.contrib.auth',
    'django.contrib.contenttypes',
    'django.contrib.sessions',
    'django.contrib.messages',
    'django.contrib.staticfiles',
    'rest_framework',
    'channels',
    'users',
    'chat',
    'listener',
]

MIDDLEWARE = [
    'django.middleware.security.SecurityMiddleware',
    'django.contrib.sessions.middleware.SessionMiddleware',
    'django.middleware.common.CommonMiddleware',
    'django.middleware.csrf.CsrfViewMiddleware',
    'django.contrib.auth.middleware.AuthenticationMiddleware',
    'django.contrib.messages.middleware.MessageMiddleware',
]

ROOT_URLCONF = 'project.urls'
TEMPLATES = [{
    'BACKEND': 'django.template.backends.django.DjangoTemplates',
    'DIRS': [],
    'APP_DIRS': True,
    'OPTIONS': {'context_processors': [
        'django.template.context_processors.request',
        'django.contrib.auth.context_processors.auth',
        'django.contrib.messages.context_processors.messages',
    ]},
}]
WSGI_APPLICATION = None
ASGI_APPLICATION = 'project.asgi.application'


def _database_from_url(url):
    """Parse DATABASE_URL (postgres://... or sqlite:///abs/path) into a DATABASES entry."""
    u = urlparse(url)
    if u.scheme in ('postgres', 'postgresql'):
        db = {
            'ENGINE': 'django.db.backends.postgresql',
            'NAME': unquote(u.path.lstrip('/')),
            'USER': unquote(u.username or ''),
            'PASSWORD': unquote(u.password or ''),
            'HOST': u.hostname or '',
            'PORT': str(u.port or ''),
        }
        # Go DSNs carry ?sslmode=disable; pass libpq options through.
        opts = {k: v[-1] for k, v in parse_qs(u.query).items()}
        if opts:
            db['OPTIONS'] = opts
        return db
    if u.scheme == 'sqlite':
        # sqlite:////tmp/x.sqlite3 -> path '//tmp/x.sqlite3' -> '/tmp/x.sqlite3'
        path = url[len('sqlite://'):]
        while path.startswith('//'):
            path = path[1:]
        return {'ENGINE': 'django.db.backends.sqlite3', 'NAME': path}
    raise ValueError('DATABASE_URL: unsupported scheme %r (use postgres:// or sqlite:///)' % u.scheme)


DATABASES = {
    'default': _database_from_url(
        os.environ.get('DATABASE_URL', 'sqlite:///' + str(BASE_DIR / 'db.sqlite3'))),
}

AUTH_USER_MODEL = 'users.User'
AUTH_PASSWORD_VALIDATORS = []

LANGUAGE_CODE = 'en-us'
TIME_ZONE = 'UTC'
USE_I18N = True
USE_L10N = True
USE_TZ = True

STATIC_URL = '/static/'
MEDIA_ROOT = os.environ.get('MEDIA_ROOT', str(BASE_DIR / 'media'))
MEDIA_URL = os.environ.get('MEDIA_URL', '/media/')
PUBLIC_BASE_URL = os.environ.get('PUBLIC_BASE_URL', 'http://127.0.0.1:8000').rstrip('/')

DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'

REST_FRAMEWORK = {
    'DEFAULT_AUTHENTICATION_CLASSES': (
        'rest_framework_simplejwt.authentication.JWTAuthentication',
    ),
    'DEFAULT_PERMISSION_CLASSES': (
        'rest_framework.permissions.IsAuthenticated',
    ),
}

SIMPLE_JWT = {
    'ACCESS_TOKEN_LIFETIME': timedelta(seconds=int(os.environ.get('ACCESS_TOKEN_LIFETIME_SECONDS', '3600'))),
    'ALGORITHM': os.environ.get('SIMPLE_JWT_ALGORITHM', 'HS256'),
    'SIGNING_KEY': os.environ.get('SIMPLE_JWT_SIGNING_KEY', SECRET_KEY),
    'VERIFYING_KEY': os.environ.get('SIMPLE_JWT_VERIFYING_KEY', ''),
}

if os.environ.get('CHANNEL_LAYER', 'memory') == 'redis':
    CHANNEL_LAYERS = {
        'default': {
            'BACKEND': 'channels_redis.core.RedisChannelLayer',
            'CONFIG': {
                'hosts': [h.strip() for h in os.environ.get('REDIS_URL', 'redis://127.0.0.1:6379').split(',')
                          if h.strip()],
                'prefix': os.environ.get('CHANNEL_LAYER_PREFIX', 'asgi'),
            },
        },
    }
else:
    CHANNEL_LAYERS = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}

LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'handlers': {'console': {'class': 'logging.StreamHandler'}},
    'root': {'handlers': ['console'], 'level': os.environ.get('LOG_LEVEL', 'WARNING')},
}

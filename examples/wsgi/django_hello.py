# A one-file Django project, as in the seed's django_hello.py.
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="torsion-example-not-secret",
    MIDDLEWARE=[],
)


def hello(request):
    return HttpResponse("Hello World!")


urlpatterns = [path("", hello)]
application = get_wsgi_application()

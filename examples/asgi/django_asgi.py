"""Django's ASGI side (Debian's python3-django): get_asgi_application()
serving a synchronous view (run in a thread by Django) and an async one.

    torsion web --asgi django_asgi:application --chdir examples/asgi
"""
import asyncio

from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="torsion-example-not-secret",
    MIDDLEWARE=[],
)

from django.core.asgi import get_asgi_application  # noqa: E402 (after configure)
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request):
    return HttpResponse("Hello from Django's ASGI side")


async def where(request):
    await asyncio.sleep(0.01)
    return JsonResponse({"path": request.path, "script_name": request.META["SCRIPT_NAME"], "method": request.method,
                         "body": request.body.decode()})


urlpatterns = [path("", hello), path("where/", where)]
application = get_asgi_application()

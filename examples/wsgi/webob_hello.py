from webob import Response
from webob.dec import wsgify


@wsgify
def application(request):
    return Response("Hello World!")

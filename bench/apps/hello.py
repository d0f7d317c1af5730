# The benchmark's plain WSGI app. It sets Content-Length, as Flask and
# Django do: without it uWSGI's --http11-socket cannot keep connections alive.
BODY = b"Hello, world!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]

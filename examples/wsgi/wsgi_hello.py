# A plain WSGI callable (the seed's wsgi_hello.py).
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"Hello world!\n"]

"""A second application of examples/compose, mounted at /blog and served
for the blog.localhost virtual host (seed 000's DispatcherMiddleware and
NameVirtualHost cases). It says where it was mounted."""


def application(environ, start_response):
    body = "blog: SCRIPT_NAME=%r PATH_INFO=%r HOST=%r\n" % (
        environ["SCRIPT_NAME"],
        environ["PATH_INFO"],
        environ.get("HTTP_HOST", ""),
    )
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]

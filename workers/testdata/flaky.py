"""An application that crashes its worker on every request, and cannot be
imported while the file FLAKY_MARK names exists."""
import os

if os.path.exists(os.environ["FLAKY_MARK"]):
    raise ImportError("the mark is there")


def application(environ, start_response):
    os._exit(7)

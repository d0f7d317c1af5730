"""The main application of examples/compose: a Flask app whose static
files torsion serves from ./static (seed 000's DelegatingResource case)."""
from flask import Flask, request, url_for

app = Flask("compose", static_folder=None)  # torsion serves /static


@app.route("/")
def index():
    return (
        '<!DOCTYPE html><title>compose</title>'
        '<link rel="stylesheet" href="%s">'
        "<p>Flask at %s, scheme %s</p>"
        % (url_for("index") + "static/style.css", request.script_root + request.path, request.scheme)
    )


@app.route("/whoami")
def whoami():
    return "%s %s" % (request.remote_addr, request.host)


application = app

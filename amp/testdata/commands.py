"""The commands of amp's interop tests, declared with Twisted's amp."""
from twisted.protocols import amp


class Sum(amp.Command):
    arguments = [(b"a", amp.Integer()), (b"b", amp.Integer())]
    response = [(b"total", amp.Integer())]


class Divide(amp.Command):
    arguments = [(b"numerator", amp.Integer()), (b"denominator", amp.Integer())]
    response = [(b"result", amp.Float())]
    errors = {ZeroDivisionError: b"ZERO_DIVISION"}


_TYPES = [
    (b"words", amp.ListOf(amp.Unicode())),
    (b"flag", amp.Boolean()),
    (b"when", amp.DateTime()),
    (b"amount", amp.Decimal()),
    (b"rows", amp.AmpList([(b"x", amp.Integer()), (b"name", amp.Unicode())])),
    (b"blob", amp.String()),
    (b"ratio", amp.Float()),
]


class Echo(amp.Command):
    arguments = _TYPES
    response = _TYPES


class Missing(amp.Command):
    arguments = []
    response = []


class Locator(amp.CommandLocator):
    @Sum.responder
    def sum(self, a, b):
        return {"total": a + b}

    @Divide.responder
    def divide(self, numerator, denominator):
        return {"result": numerator / denominator}

    @Echo.responder
    def echo(self, **kw):
        return kw

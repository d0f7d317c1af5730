"""A Twisted AMP client that calls the Go server of TestTwistedClient, on
the port given, and prints what it gets."""
import datetime
import decimal
import sys

from twisted.internet import defer, endpoints, protocol, task
from twisted.protocols import amp

from commands import Divide, Echo, Missing, Sum


@task.react
@defer.inlineCallbacks
def main(reactor):
    ep = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", int(sys.argv[1]))
    p = yield ep.connect(protocol.Factory.forProtocol(amp.AMP))
    r = yield p.callRemote(Sum, a=13, b=81)
    print("sum", r["total"])
    try:
        yield p.callRemote(Divide, numerator=1, denominator=0)
    except ZeroDivisionError:
        print("divide ZeroDivisionError")
    when = datetime.datetime(2026, 12, 2, 10, 30, 0, 123456, tzinfo=amp.utc)
    r = yield p.callRemote(Echo, words=["h\u00e9llo", "world"], flag=True, when=when,
                           amount=decimal.Decimal("1.25"), rows=[{"x": 1, "name": "one"}, {"x": 2, "name": "two"}],
                           blob=b"\x00\xff" * 32767, ratio=0.5)
    print("echo", r["words"], r["flag"], r["when"] == when, r["amount"], r["rows"], len(r["blob"]), r["ratio"])
    try:
        yield p.callRemote(Missing)
    except amp.UnhandledCommand:
        print("missing UnhandledCommand")
    rs = yield defer.gatherResults([p.callRemote(Sum, a=i, b=i) for i in range(50)])
    print("concurrent", sum(r["total"] for r in rs))

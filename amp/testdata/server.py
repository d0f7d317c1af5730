"""A Twisted AMP server for TestTwistedServer: it prints its port, then
answers the commands of commands.py until it is killed."""
import sys

from twisted.internet import endpoints, protocol, reactor
from twisted.protocols import amp

from commands import Locator


def listening(port):
    print(port.getHost().port, flush=True)


factory = protocol.Factory()
factory.protocol = lambda: amp.AMP(locator=Locator())
endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory).addCallback(listening)
reactor.run()

# The commands of the seed's twisted_book_configure plugin, declared with
# Twisted's amp, for the seed's client (configure_client.py), which imports
# them from twisted.plugins. Twisted finds this file through the
# twisted/plugins directories on sys.path (PYTHONPATH=. here).
from twisted.protocols import amp

class GetCapitalize(amp.Command):
    arguments = []
    response = [(b'value', amp.Float())]

class GetExclaim(amp.Command):
    arguments = []
    response = [(b'value',  amp.Float())]

class SetCapitalize(amp.Command):
    arguments = [(b'value', amp.Float())]
    response = []

class SetExclaim(amp.Command):
    arguments = [(b'value',  amp.Float())]
    response = []

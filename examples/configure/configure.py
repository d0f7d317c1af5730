# The seed's twisted_book_configure, on torsion: the commands and the
# AppConfiguration locator are the seed's, with `from twisted.protocols
# import amp` replaced by `from torsion import amp`; torsion.locator() takes
# the place of the plugin's control factory. Every command runs in every
# worker.
#
#   torsion web --port tcp:8000 --amp tcp:8001:interface=127.0.0.1 \
#               --wsgi configure.application --workers 3
#   PYTHONPATH=. python3 configure_client.py     # the seed's client, unchanged
import torsion
from torsion import amp

import pyramid_dynamic

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

class AppConfiguration(amp.CommandLocator):

    @GetCapitalize.responder
    def get_capitalize(self):
        return {'value':  pyramid_dynamic.FEATURES['capitalize']}

    @GetExclaim.responder
    def get_exclaim(self):
        return {'value':  pyramid_dynamic.FEATURES['exclaim']}

    @SetCapitalize.responder
    def set_capitalize(self, value):
        pyramid_dynamic.FEATURES['capitalize'] = value
        return {}

    @SetExclaim.responder
    def set_exclaim(self, value):
        pyramid_dynamic.FEATURES['exclaim'] = value
        return {}

torsion.locator(AppConfiguration())
application = pyramid_dynamic.application

# The seed's twisted_book_scheduled, on torsion: update() is the seed's,
# unchanged, and torsion.every() is the TimerService. Every worker calls it
# every second.
#
#   torsion web --port tcp:8000 --wsgi scheduled.application --workers 3
import time

import torsion  # in place of twisted.application.internet and the reactor
from torsion import reactor

import wsgi_param

def update(application, reactor):
    stamp = time.ctime(reactor.seconds())
    application.greeting = "hello world, it's {}".format(stamp)

torsion.every(1, update, wsgi_param.application, reactor)
application = wsgi_param.application

# The seed's twisted_book_control, on torsion: the line that a client sends
# to the control port becomes the greeting of every worker, and the client
# gets "greeting is now: ..." back, as the seed's UpdateMessage answers.
#
#   torsion web --port tcp:8000 --control tcp:8001:interface=127.0.0.1 \
#               --wsgi control.application --workers 3
#   python3 -c "import socket; s = socket.create_connection(('127.0.0.1', 8001)); s.sendall(b'hi\n'); print(s.recv(1000))"
import torsion

import wsgi_param

@torsion.control
def update_message(line):
    wsgi_param.application.greeting = line
    return "greeting is now: " + line

application = wsgi_param.application

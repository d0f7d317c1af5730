"""torsion's worker: runs one Python application, WSGI (PEP 3333) or ASGI 3,
for torsion, which does all the networking. Standard library only, so it
runs under any Python 3.8+ interpreter, PyPy included.

torsion writes this package to a directory of its own at each start and
runs it as  python DIR/torsion_worker/__main__.py --app MODULE:ATTR
--threads N --workers M  with a connected Unix socket as file descriptor 3
and the control socket as 4 (--control-fd); the two talk in frames.
PROTOCOL.md, in package workers, is the one description of those frames;
this program follows version frames.PROTOCOL_VERSION of it.

Its modules: frames (the frames, the socket, the dispatch table), wsgi,
asgi, control (the torsion module applications import: timers, the
control handler, the AMP locator), amp (torsion.amp) and main."""

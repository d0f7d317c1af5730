"""An application changed through torsion's control channel, with a timer
that counts and raises on its second call."""
import os
import time

import torsion

state = {"greeting": "hello", "ticks": 0}


@torsion.control
def set_greeting(line):
    if line == "raise":
        raise ValueError("refused: " + line)
    state["greeting"] = line
    return "greeting is now: %s" % line


def tick():
    state["ticks"] += 1
    if state["ticks"] == 2:
        raise RuntimeError("the second tick fails")


torsion.every(0.05, tick)


def application(environ, start_response):
    if environ["PATH_INFO"] == "/together":
        # A barrier: mark this worker in the directory the query names and
        # wait (10s at most) until three workers are there.
        d = environ["QUERY_STRING"]
        open(os.path.join(d, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 10
        while len(os.listdir(d)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%d %s %d" % (os.getpid(), state["greeting"], state["ticks"])).encode()]


from torsion import amp


class SetGreeting(amp.Command):
    arguments = [(b"greeting", amp.Unicode())]
    response = [(b"was", amp.Unicode())]
    errors = {KeyError: b"EMPTY"}


class Locator(amp.CommandLocator):
    @SetGreeting.responder
    def set_greeting(self, greeting):
        if not greeting:
            raise KeyError("an empty greeting")
        was, state["greeting"] = state["greeting"], greeting
        return {"was": was}


torsion.locator(Locator())

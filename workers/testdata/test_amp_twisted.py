"""torsion.amp (the worker's standard-library AMP, for torsion web --amp)
against Debian's Twisted, run by TestWorkerAMPTwisted: every argument type
encodes each value to the bytes Twisted's encodes it to, and each side
decodes the other's bytes to the same value; a whole command, its box
and its answer, likewise."""

import datetime
import decimal
import os
import sys
import unittest

from twisted.protocols import amp as tamp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from torsion_worker import amp as ours  # noqa: E402  (workers/torsion_worker/amp.py)

utc = datetime.timezone.utc
east = datetime.timezone(datetime.timedelta(hours=5, minutes=30))
west = datetime.timezone(-datetime.timedelta(hours=8))

# (name, our type, Twisted's type, values)
CASES = [
    ("Integer", ours.Integer(), tamp.Integer(), [0, 1, -1, 2**63 - 1, -(2**63), 10**30]),
    ("String", ours.String(), tamp.String(), [b"", b"\x00\xff", b"x" * 65535]),
    ("Unicode", ours.Unicode(), tamp.Unicode(), ["", "h\u00e9llo", "\U0001f600", "a\x00b"]),
    ("Float", ours.Float(), tamp.Float(), [0.0, -0.0, 0.5, 1e300, 1e-300, float("inf"), float("-inf"), 0.1 + 0.2]),
    ("Boolean", ours.Boolean(), tamp.Boolean(), [True, False]),
    ("Decimal", ours.Decimal(), tamp.Decimal(), [decimal.Decimal(s) for s in ("0", "1.25", "-1E+10", "1.000", "Infinity", "-Infinity", "1E-30")]),
    ("DateTime", ours.DateTime(), tamp.DateTime(), [
        datetime.datetime(2026, 12, 7, 21, 5, 30, 123456, utc),
        datetime.datetime(1, 1, 1, 0, 0, 0, 0, east),
        datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, west),
    ]),
    ("ListOf(Unicode)", ours.ListOf(ours.Unicode()), tamp.ListOf(tamp.Unicode()), [[], ["a"], ["h\u00e9", "", "world"]]),
    ("ListOf(Integer)", ours.ListOf(ours.Integer()), tamp.ListOf(tamp.Integer()), [[1, -2, 3]]),
    ("AmpList", ours.AmpList([(b"x", ours.Integer()), (b"name", ours.Unicode())]),
     tamp.AmpList([(b"x", tamp.Integer()), (b"name", tamp.Unicode())]),
     [[], [{"x": 1, "name": "one"}, {"x": 2, "name": "tw\u00f6"}]]),
]


def twisted_wire(t, v):
    """Twisted's encoding of v (AmpList encodes only with a protocol)."""
    return t.toStringProto(v, None) if isinstance(t, tamp.AmpList) else t.toString(v)


def twisted_value(t, wire):
    return t.fromStringProto(wire, None) if isinstance(t, tamp.AmpList) else t.fromString(wire)


def same(a, b):
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 is not 0.0
    return a == b and type(a) is type(b)


class Arguments(unittest.TestCase):
    def test_every_type(self):
        for name, mine, theirs, values in CASES:
            for v in values:
                with self.subTest(type=name, value=v):
                    wire = twisted_wire(theirs, v)
                    self.assertEqual(mine.toString(v), wire)
                    self.assertTrue(same(mine.fromString(wire), twisted_value(theirs, wire)), (mine.fromString(wire), twisted_value(theirs, wire)))
                    self.assertTrue(same(mine.fromString(wire), v), (mine.fromString(wire), v))

    def test_nan(self):
        wire = tamp.Float().toString(float("nan"))
        self.assertEqual(ours.Float().toString(float("nan")), wire)
        self.assertTrue(ours.Float().fromString(wire) != ours.Float().fromString(wire))
        d = tamp.Decimal().toString(decimal.Decimal("NaN"))
        self.assertEqual(ours.Decimal().toString(decimal.Decimal("NaN")), d)
        self.assertTrue(ours.Decimal().fromString(d).is_nan())

    def test_refused_alike(self):
        for mine, theirs, v in [
            (ours.Float(), tamp.Float(), 1),
            (ours.Decimal(), tamp.Decimal(), 1.5),
            (ours.DateTime(), tamp.DateTime(), datetime.datetime(2026, 1, 1)),
        ]:
            with self.subTest(value=v):
                with self.assertRaises(ValueError):
                    theirs.toString(v)
                with self.assertRaises(ValueError):
                    mine.toString(v)
        with self.assertRaises(TypeError):
            tamp.Boolean().fromString(b"yes")
        with self.assertRaises(TypeError):
            ours.Boolean().fromString(b"yes")


class Echo(tamp.Command):
    arguments = [(b"n", tamp.Integer()), (b"words", tamp.ListOf(tamp.Unicode())), (b"when", tamp.DateTime()),
                 (b"maybe", tamp.Unicode(optional=True))]
    response = [(b"total", tamp.Integer()), (b"rows", tamp.AmpList([(b"x", tamp.Integer())]))]
    errors = {KeyError: b"NO_KEY"}


class OurEcho(ours.Command):
    commandName = b"Echo"
    arguments = [(b"n", ours.Integer()), (b"words", ours.ListOf(ours.Unicode())), (b"when", ours.DateTime()),
                 (b"maybe", ours.Unicode(optional=True))]
    response = [(b"total", ours.Integer()), (b"rows", ours.AmpList([(b"x", ours.Integer())]))]
    errors = {KeyError: b"NO_KEY"}


class Locator(ours.CommandLocator):
    @OurEcho.responder
    def echo(self, n, words, when, maybe=None):
        if n < 0:
            raise KeyError("negative")
        return {"total": n + len(words), "rows": [{"x": i} for i in range(n)]}


class Commands(unittest.TestCase):
    def test_box_from_twisted(self):
        """A box Twisted's client makes is run by our locator, and its
        answer is read by Twisted's parser."""
        when = datetime.datetime(2026, 12, 7, 12, 0, 0, 0, utc)
        box = Echo.makeArguments({"n": 3, "words": ["a", "b"], "when": when}, None)
        box[b"_command"] = b"Echo"
        status, answer = Locator()._answer(box.serialize())
        self.assertEqual(status, 0)
        got = tamp.parseString(answer)[0]
        self.assertEqual(Echo.parseResponse(got, None), {"total": 5, "rows": [{"x": 0}, {"x": 1}, {"x": 2}]})

    def test_declared_error(self):
        box = Echo.makeArguments({"n": -1, "words": [], "when": datetime.datetime(2026, 1, 1, tzinfo=utc)}, None)
        box[b"_command"] = b"Echo"
        status, answer = Locator()._answer(box.serialize())
        self.assertEqual(status, 2)
        got = tamp.parseString(answer)[0]
        self.assertEqual(got[b"_error_code"], b"NO_KEY")

    def test_unhandled(self):
        status, answer = Locator()._answer(tamp.AmpBox({b"_command": b"Nope"}).serialize())
        self.assertEqual((status, tamp.parseString(answer)[0][b"_error_code"]), (2, b"UNHANDLED"))

    def test_serialize_alike(self):
        box = {b"b": b"2", b"a": b"\x00" * 300, b"_command": b"X"}
        self.assertEqual(ours._amp_serialize(box), tamp.AmpBox(box).serialize())
        self.assertEqual(ours._amp_parse(tamp.AmpBox(box).serialize() * 2), [box, box])


if __name__ == "__main__":
    unittest.main()

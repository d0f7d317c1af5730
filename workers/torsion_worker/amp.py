"""torsion.amp: AMP commands declared as with twisted.protocols.amp
(Command, CommandLocator and the argument types), for the locator of
torsion web --amp, which the application registers with
torsion.locator(). Replace `from twisted.protocols import amp` with
`from torsion import amp`. The wire format is Twisted's."""

import struct


class _AmpArgument:
    """An AMP argument type: toString() to the wire, fromString() from it."""

    def __init__(self, optional=False):
        self.optional = optional


class _Integer(_AmpArgument):
    def toString(self, v):
        return b"%d" % (v,)

    def fromString(self, s):
        return int(s)


class _String(_AmpArgument):
    def toString(self, v):
        return v

    def fromString(self, s):
        return s


class _Float(_AmpArgument):
    def toString(self, v):
        if not isinstance(v, float):
            raise ValueError("Bad float value %r" % (v,))
        return str(v).encode("ascii")

    def fromString(self, s):
        return float(s)


class _Boolean(_AmpArgument):
    def toString(self, v):
        return b"True" if v else b"False"

    def fromString(self, s):
        if s == b"True":
            return True
        if s == b"False":
            return False
        raise TypeError("Bad boolean value: %r" % (s,))


class _Unicode(_AmpArgument):
    def toString(self, v):
        return v.encode("utf-8")

    def fromString(self, s):
        return s.decode("utf-8")


class _Decimal(_AmpArgument):
    def toString(self, v):
        import decimal
        if not isinstance(v, decimal.Decimal):
            raise ValueError("amp.Decimal can only encode instances of decimal.Decimal")
        return str(v).encode("ascii")

    def fromString(self, s):
        import decimal
        return decimal.Decimal(s.decode("ascii"))


class _DateTime(_AmpArgument):
    def toString(self, v):
        offset = v.utcoffset()
        if offset is None:
            raise ValueError("amp.DateTime cannot serialize naive datetime instances")
        minutes = (offset.days * 86400 + offset.seconds) // 60
        return ("%04i-%02i-%02iT%02i:%02i:%02i.%06i%s%02i:%02i" % (
            v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond,
            "+" if minutes > 0 else "-", abs(minutes) // 60, abs(minutes) % 60)).encode("ascii")

    def fromString(self, s):
        import datetime
        s = s.decode("ascii")
        if len(s) != 32:
            raise ValueError("invalid date format %r" % (s,))
        sign = -1 if s[26] == "-" else 1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(s[27:29]), minutes=int(s[30:32])))
        return datetime.datetime(int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]),
                                 int(s[17:19]), int(s[20:26]), tz)


class _ListOf(_AmpArgument):
    def __init__(self, elementType, optional=False):
        super().__init__(optional)
        self.elementType = elementType

    def toString(self, v):
        out = []
        for item in v:
            b = self.elementType.toString(item)
            out.append(struct.pack("!H", len(b)) + b)
        return b"".join(out)

    def fromString(self, s):
        out, pos = [], 0
        while pos < len(s):
            n = struct.unpack_from("!H", s, pos)[0]
            out.append(self.elementType.fromString(s[pos + 2:pos + 2 + n]))
            pos += 2 + n
        return out


class _AmpList(_AmpArgument):
    def __init__(self, subargs, optional=False):
        super().__init__(optional)
        self.subargs = subargs

    def toString(self, v):
        return b"".join(_amp_serialize(_amp_encode(self.subargs, item)) for item in v)

    def fromString(self, s):
        return [_amp_decode(self.subargs, box) for box in _amp_parse(s)]


def _amp_serialize(box):
    """The wire form of a box: 2-byte lengths, keys sorted, an empty key last."""
    out = []
    for k, v in sorted(box.items()):
        if len(k) > 0xFF or len(v) > 0xFFFF:
            raise ValueError("AMP key or value too long: %r" % (k,))
        out.append(struct.pack("!H", len(k)) + k + struct.pack("!H", len(v)) + v)
    out.append(b"\0\0")
    return b"".join(out)


def _amp_parse(data):
    """The boxes data holds, one after another."""
    boxes, box, key, pos = [], {}, None, 0
    while pos < len(data):
        n = struct.unpack_from("!H", data, pos)[0]
        item, pos = data[pos + 2:pos + 2 + n], pos + 2 + n
        if key is not None:
            box[key], key = item, None
        elif n == 0:
            boxes.append(box)
            box = {}
        else:
            key = item
    return boxes


def _amp_encode(params, values):
    box = {}
    for name, arg in params:
        key = name.decode("ascii") if isinstance(name, bytes) else name
        if key not in values:
            if arg.optional:
                continue
            raise KeyError("AMP value %r is missing" % (key,))
        box[key.encode("ascii")] = arg.toString(values[key])
    return box


def _amp_decode(params, box):
    values = {}
    for name, arg in params:
        bname = name if isinstance(name, bytes) else name.encode("ascii")
        if bname not in box:
            if arg.optional:
                continue
            raise KeyError("AMP argument %r is missing" % (bname.decode(),))
        values[bname.decode("ascii")] = arg.fromString(box[bname])
    return values


class _AmpRemoteError(Exception):
    """A declared error, answered with its code."""


class _CommandMeta(type):
    def __new__(mcs, name, bases, attrs):
        cls = super().__new__(mcs, name, bases, attrs)
        if "commandName" not in attrs:
            cls.commandName = name.encode("ascii")
        return cls


class _Command(metaclass=_CommandMeta):
    """An AMP command, declared as with Twisted: arguments and response
    are lists of (name, argument type); errors maps exception classes to
    error codes."""

    arguments = []
    response = []
    errors = {}
    fatalErrors = {}
    requiresAnswer = True

    @classmethod
    def responder(cls, func):
        func._torsion_amp_command = cls
        return func


class _CommandLocator:
    """Answers the commands whose responders its methods are, as Twisted's
    CommandLocator does."""

    def _responders(self):
        found = {}
        for klass in reversed(type(self).__mro__):
            for attr in vars(klass).values():
                cmd = getattr(attr, "_torsion_amp_command", None)
                if cmd is not None:
                    found[cmd.commandName] = (cmd, attr)
        return found

    def _answer(self, wire):
        """Runs the command wire holds; returns (status, payload):
        0 and the response box, 2 and a declared error's box."""
        box = _amp_parse(wire)[0]
        name = box.pop(b"_command")
        found = self._responders().get(name)
        if found is None:
            return 2, _amp_serialize({b"_error_code": b"UNHANDLED",
                                      b"_error_description": ("Unhandled Command: %r" % (name,)).encode()})
        cmd, func = found
        try:
            result = func(self, **_amp_decode(cmd.arguments, box))
        except Exception as e:
            for klass, code in list(cmd.errors.items()) + list(cmd.fatalErrors.items()):
                if isinstance(e, klass):
                    return 2, _amp_serialize({b"_error_code": code, b"_error_description": str(e).encode("utf-8", "replace")})
            raise
        return 0, _amp_serialize(_amp_encode(cmd.response, result or {}))


# The names applications use, as twisted.protocols.amp has them.
Command, CommandLocator = _Command, _CommandLocator
Integer, String, Float, Boolean, Unicode = _Integer, _String, _Float, _Boolean, _Unicode
Decimal, DateTime, ListOf, AmpList = _Decimal, _DateTime, _ListOf, _AmpList

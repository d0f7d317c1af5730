package protocol

import "bytes"

// DefaultMaxLineLength is the longest line LineReceiver accepts by default,
// Twisted's LineReceiver.MAX_LENGTH.
const DefaultMaxLineLength = 16384

// LineReceiver is a Protocol that splits the incoming bytes into lines,
// Twisted's basic.LineReceiver. Set the callbacks before the connection is
// made; all of them are optional except OnLine.
type LineReceiver struct {
	// Delimiter ends each line; nil means "\r\n".
	Delimiter []byte
	// MaxLength is the longest line accepted, without its delimiter;
	// 0 means DefaultMaxLineLength.
	MaxLength int
	// OnConnect is called when the connection is made.
	OnConnect func(r *LineReceiver)
	// OnLine is called with each line, without its delimiter. The line is
	// only valid during the call. Once it has called LoseConnection on the
	// transport, no more lines are delivered, even those already
	// received, as in Twisted (the transport is "disconnecting").
	OnLine func(r *LineReceiver, line []byte)
	// OnTooLong is called when a line exceeds MaxLength; nil means close
	// the connection, as Twisted's lineLengthExceeded does. Either way the
	// rest of the connection's data is ignored.
	OnTooLong func(r *LineReceiver)
	// OnLost is called when the connection is lost.
	OnLost func(r *LineReceiver, err error)

	t       Transport
	buf     []byte
	tooLong bool
}

// Transport returns the connection; it is nil before the connection is made.
func (r *LineReceiver) Transport() Transport { return r.t }

// SendLine writes line followed by the delimiter in one write.
func (r *LineReceiver) SendLine(line []byte) error {
	return r.t.WriteSequence([][]byte{line, r.delim()})
}

func (r *LineReceiver) delim() []byte {
	if r.Delimiter == nil {
		return []byte("\r\n")
	}
	return r.Delimiter
}

func (r *LineReceiver) max() int {
	if r.MaxLength <= 0 {
		return DefaultMaxLineLength
	}
	return r.MaxLength
}

// ConnectionMade implements Protocol.
func (r *LineReceiver) ConnectionMade(t Transport) {
	r.t = t
	if r.OnConnect != nil {
		r.OnConnect(r)
	}
}

// DataReceived implements Protocol.
func (r *LineReceiver) DataReceived(data []byte) {
	if r.tooLong {
		return
	}
	d := r.delim()
	if len(r.buf) > 0 {
		r.buf = append(r.buf, data...)
		data = r.buf
	}
	for {
		i := bytes.Index(data, d)
		if i < 0 {
			break
		}
		if i > r.max() {
			r.exceeded()
			return
		}
		r.OnLine(r, data[:i])
		data = data[i+len(d):]
		if r.tooLong {
			return
		}
		if dt, ok := r.t.(interface{ Disconnecting() bool }); ok && dt.Disconnecting() {
			r.tooLong, r.buf = true, nil // what follows is ignored
			return
		}
	}
	// A partial line longer than the limit can never become valid.
	if len(data) > r.max()+len(d)-1 {
		r.exceeded()
		return
	}
	r.buf = append(r.buf[:0], data...)
}

func (r *LineReceiver) exceeded() {
	r.tooLong, r.buf = true, nil
	if r.OnTooLong != nil {
		r.OnTooLong(r)
		return
	}
	r.t.LoseConnection()
}

// ConnectionLost implements Protocol.
func (r *LineReceiver) ConnectionLost(err error) {
	if r.OnLost != nil {
		r.OnLost(r, err)
	}
}

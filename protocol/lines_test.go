package protocol

import (
	"net"
	"reflect"
	"strings"
	"testing"
)

// fakeTransport records what a protocol writes.
type fakeTransport struct {
	out  strings.Builder
	lost bool
}

func (f *fakeTransport) Write(p []byte) (int, error) { return f.out.Write(p) }
func (f *fakeTransport) WriteSequence(bufs [][]byte) error {
	for _, b := range bufs {
		f.out.Write(b)
	}
	return nil
}
func (f *fakeTransport) LoseConnection()      { f.lost = true }
func (f *fakeTransport) LocalAddr() net.Addr  { return nil }
func (f *fakeTransport) RemoteAddr() net.Addr { return nil }

func TestLineReceiver(t *testing.T) {
	tests := []struct {
		name   string
		delim  string
		max    int
		chunks []string
		lines  []string
		lost   bool
	}{
		{"one chunk", "", 0, []string{"a\r\nbb\r\n"}, []string{"a", "bb"}, false},
		{"split everywhere", "", 0, []string{"he", "llo\r", "\nwor", "ld\r\n", "tail"}, []string{"hello", "world"}, false},
		{"empty lines", "", 0, []string{"\r\n\r\nx\r\n"}, []string{"", "", "x"}, false},
		{"newline delimiter", "\n", 0, []string{"a\nb\r\n"}, []string{"a", "b\r"}, false},
		{"line at the limit", "", 3, []string{"abc\r\n"}, []string{"abc"}, false},
		{"line over the limit", "", 3, []string{"ok\r\nabcd\r\nmore\r\n"}, []string{"ok"}, true},
		{"partial over the limit", "", 3, []string{"ab", "cde"}, nil, true},
		{"partial at the limit with half a delimiter", "", 3, []string{"abc\r"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			ft := &fakeTransport{}
			r := &LineReceiver{MaxLength: tt.max, OnLine: func(_ *LineReceiver, l []byte) { got = append(got, string(l)) }}
			if tt.delim != "" {
				r.Delimiter = []byte(tt.delim)
			}
			r.ConnectionMade(ft)
			for _, c := range tt.chunks {
				buf := []byte(c)
				r.DataReceived(buf)
				copy(buf, strings.Repeat("X", len(buf))) // the caller reuses its buffer
			}
			if !reflect.DeepEqual(got, tt.lines) {
				t.Errorf("lines = %q, want %q", got, tt.lines)
			}
			if ft.lost != tt.lost {
				t.Errorf("lost = %v, want %v", ft.lost, tt.lost)
			}
		})
	}
}

func TestSendLine(t *testing.T) {
	ft := &fakeTransport{}
	r := &LineReceiver{Delimiter: []byte("\n"), OnLine: func(*LineReceiver, []byte) {}}
	r.ConnectionMade(ft)
	r.SendLine([]byte("hi"))
	if ft.out.String() != "hi\n" {
		t.Errorf("wrote %q", ft.out.String())
	}
}

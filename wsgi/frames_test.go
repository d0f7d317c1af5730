package wsgi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/torsion-server/torsion/workers"
)

// golden is workers/testdata/frames.json: frames both sides of
// PROTOCOL.md must produce and read byte for byte. torsion_worker's side is
// checked by its testdata/test_worker.py (package workers' TestWorkerPy),
// the runtime's frames by package workers' TestGoldenRuntimeKinds.
type golden struct {
	Version int `json:"version"`
	Request struct {
		Frame   string            `json:"frame"` // hex
		Body    string            `json:"body"`
		More    bool              `json:"more"`
		Environ map[string]string `json:"environ"`
	} `json:"request"`
	Head struct {
		Payload string     `json:"payload"` // hex
		Status  string     `json:"status"`
		Headers [][]string `json:"headers"`
	} `json:"head"`
	// Frames are one or more of every other kind, whole (hex), with what
	// they mean: the side that sends a kind must make these bytes of it,
	// the side that receives it must read this meaning from them.
	Frames []goldenFrame `json:"frames"`
}

// goldenFrame is one frame of frames.json's list; the fields beside
// Frame are those its kind has.
type goldenFrame struct {
	Name, To, Kind, Frame string
	ID                    uint32
	Body, Text, Line      string
	Box, Python, Answer   string
	Timeout               bool
	Count, Most, Status   int
	Version, PID          int
	Offset                int64
	Trailers              [][]string
}

// goldenFile is where the golden frames are, beside the worker program.
const goldenFile = "../workers/testdata/frames.json"

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// goldenRequest is the request whose R frame is golden: a latin-1 byte in
// the path (a 'u' string), a repeated header, a body.
func goldenRequest() *http.Request {
	r := httptest.NewRequest("POST", "http://example.org:8080/caf%C3%A9?q=1", strings.NewReader("hello"))
	r.RemoteAddr = "192.0.2.1:4711"
	r.Header = http.Header{"Cookie": {"a=1", "b=2"}}
	return r
}

// TestGoldenFrames: Go writes the golden R frame and reads the golden S
// payload; the version is the golden one.
func TestGoldenFrames(t *testing.T) {
	g := readGolden(t)
	p := &Pool{}
	got := p.requestFrame(nil, goldenRequest(), []byte(g.Request.Body), g.Request.More)
	if hex.EncodeToString(got) != g.Request.Frame {
		t.Errorf("R frame:\n got %x\nwant %s", got, g.Request.Frame)
	}
	payload, _ := hex.DecodeString(g.Head.Payload)
	status, fields, err := parseHead(payload)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, h := range g.Head.Headers {
		for _, f := range h {
			want = append(want, latin1(f))
		}
	}
	if status != g.Head.Status || !slices.Equal(fields, want) {
		t.Errorf("S payload read as %q %q, want %q %q", status, fields, g.Head.Status, want)
	}
}

// TestGoldenFrameKinds: the adapter makes the golden frames of the kinds
// it sends (B, Y, C, W) with the encoders it uses, byte for byte, and
// reads the meaning of those it receives (D, F, r, X, E) with its
// decoders; the runtime's kinds (K, L, M, m, C's timeout) are package
// workers'. test_worker.py checks the other way round.
func TestGoldenFrameKinds(t *testing.T) {
	g := readGolden(t)
	kinds := map[string]bool{"R": true, "S": true} // golden above
	for _, f := range g.Frames {
		kinds[f.Kind] = true
		want, err := hex.DecodeString(f.Frame)
		if err != nil || len(want) < workers.HeaderLen {
			t.Fatalf("%s: bad golden frame %q", f.Name, f.Frame)
		}
		if f.To == "worker" {
			var got []byte
			switch f.Kind {
			case "B":
				got = workers.AppendFrame(nil, workers.KindBody, f.ID, []byte(f.Body))
			case "Y":
				got = workers.AppendFrame(nil, workers.KindBodyErr, f.ID, []byte(f.Text))
			case "C":
				if f.Timeout {
					continue // the runtime's
				}
				got = workers.AppendFrame(nil, workers.KindCancel, f.ID, nil)
			case "W":
				got = workers.AppendFrame(nil, workers.KindWindow, f.ID, windowPayload(f.Count))
			case "M":
				continue // the runtime's
			default:
				t.Errorf("%s: Go does not send %s frames", f.Name, f.Kind)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s: Go makes\n %x\nwant\n %x", f.Name, got, want)
			}
			continue
		}
		kind, id, n := want[0], binary.LittleEndian.Uint32(want[1:]), binary.LittleEndian.Uint32(want[5:])
		p := want[workers.HeaderLen:]
		if string(rune(kind)) != f.Kind || id != f.ID || int(n) != len(p) {
			t.Errorf("%s: header read as %c %d %d", f.Name, kind, id, n)
			continue
		}
		var got, meant any
		switch f.Kind {
		case "K", "L", "m":
			continue // the runtime's
		case "D":
			got, meant = string(p), f.Body
		case "X":
			got, meant = string(p), f.Text
		case "F":
			off, err := parseOffset(p)
			got, meant = fmt.Sprint(off, err), fmt.Sprint(f.Offset, nil)
		case "r":
			most, err := parseMost(p)
			got, meant = fmt.Sprint(most, err), fmt.Sprint(f.Most, nil)
		case "E":
			var fields []string
			if len(p) > 0 {
				fields, err = parseTrailers(p)
			}
			var want []string
			for _, tr := range f.Trailers {
				want = append(want, latin1(tr[0]), latin1(tr[1]))
			}
			got, meant = fmt.Sprintf("%q %v", fields, err), fmt.Sprintf("%q <nil>", want)
		default:
			t.Errorf("%s: Go does not read %s frames", f.Name, f.Kind)
			continue
		}
		if got != meant {
			t.Errorf("%s: Go reads %v, want %v", f.Name, got, meant)
		}
	}
	for _, k := range []byte{workers.KindRequest, workers.KindBody, workers.KindBodyErr, workers.KindCancel, workers.KindWindow, workers.KindStart, workers.KindData, workers.KindFile, workers.KindRead, workers.KindError, workers.KindEnd} {
		if !kinds[string(rune(k))] {
			t.Errorf("no golden frame of kind %c", k)
		}
	}
}

// latin1 is s, whose runes are below 256, as latin-1 bytes: how the S
// payload carries header values.
func latin1(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		b = append(b, byte(r))
	}
	return string(b)
}

// TestParseHeadMalformed: an S payload whose lengths do not add up is a
// protocol error, never a misread header.
func TestParseHeadMalformed(t *testing.T) {
	for _, p := range [][]byte{
		nil,
		{1, 0, 0},
		{2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'a', 'b'},        // an even count: a name without its value
		{1, 0, 0, 0, 9, 0, 0, 0, '2', '0', '0'},               // a field longer than the frame
		{1, 0, 0, 0, 3, 0, 0, 0, '2', '0', '0', 'x'},          // bytes after the fields
		{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0},                  // a count beyond the frame
		{3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 'a'}, // lengths beyond the data
	} {
		if _, _, err := parseHead(p); !errors.Is(err, workers.ErrProtocol) {
			t.Errorf("parseHead(%x) = %v, want a protocol error", p, err)
		}
	}
}

// TestParseTrailers: an E payload holds names and values, an even count;
// an odd one, or lengths that do not add up, is a protocol error.
func TestParseTrailers(t *testing.T) {
	p := []byte{2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 'X', 'o', 'k'}
	if got, err := parseTrailers(p); err != nil || !slices.Equal(got, []string{"X", "ok"}) {
		t.Errorf("parseTrailers(%x) = %q, %v", p, got, err)
	}
	for _, p := range [][]byte{
		{1, 0, 0, 0, 1, 0, 0, 0, 'X'}, // a name without its value
		{2, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 'X', 'o', 'k'},
		{0, 0},
	} {
		if _, err := parseTrailers(p); !errors.Is(err, workers.ErrProtocol) {
			t.Errorf("parseTrailers(%x) = %v, want a protocol error", p, err)
		}
	}
}

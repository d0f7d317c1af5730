package wsgi

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// golden is testdata/frames.json: frames both sides of PROTOCOL.md must
// produce and read byte for byte. worker.py's side is checked by
// testdata/test_worker.py, which TestWorkerPy runs.
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
}

func readGolden(t *testing.T) golden {
	t.Helper()
	b, err := os.ReadFile("testdata/frames.json")
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
	if g.Version != protocolVersion {
		t.Errorf("golden version %d, Go speaks %d", g.Version, protocolVersion)
	}
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
		if _, _, err := parseHead(p); !errors.Is(err, errProtocol) {
			t.Errorf("parseHead(%x) = %v, want a protocol error", p, err)
		}
	}
	for _, tt := range []struct {
		k    string
		want string
	}{{"1 42 3.11.2", ""}, {"2 42 3.11.2", "version 2"}, {"42 3.11.2", "K frame"}} {
		_, err := parseReady([]byte(tt.k))
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("parseReady(%q) = %v, want %q", tt.k, err, tt.want)
		}
	}
}

// TestWorkerPy runs worker.py's unit tests (testdata/test_worker.py: the
// golden frames, and a real exchange with worker.py on a socket pair)
// under CPython and PyPy.
func TestWorkerPy(t *testing.T) {
	t.Parallel()
	for _, py := range []string{python, "pypy3"} {
		t.Run(py, func(t *testing.T) {
			if py != python && testing.Short() {
				t.Skip("PyPy starts slowly; run without -short")
			}
			if _, err := exec.LookPath(py); err != nil {
				t.Fatalf("%s is missing (scripts/test installs it): %v", py, err)
			}
			cmd := exec.Command(py, "-m", "unittest", "-v", "test_worker")
			cmd.Dir = "testdata"
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s -m unittest test_worker: %v\n%s", py, err, out.String())
			}
			t.Logf("%s", out.String())
		})
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
		if _, err := parseTrailers(p); !errors.Is(err, errProtocol) {
			t.Errorf("parseTrailers(%x) = %v, want a protocol error", p, err)
		}
	}
}

package workers

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// golden is the part of testdata/frames.json the runtime checks: its
// version, and the frames of every kind, of which the runtime makes and
// reads its own (package wsgi checks the others). torsion_worker's side is
// checked by testdata/test_worker.py, which TestWorkerPy runs.
type golden struct {
	Version int `json:"version"`
	Frames  []struct {
		Name, To, Kind, Frame string
		ID                    uint32
		Text, Line, Box       string
		Python, Answer        string
		Timeout               bool
		Status                int
	} `json:"frames"`
}

// TestGoldenRuntimeKinds: Go makes the golden frames of the runtime's
// kinds that it sends (M, C's timeout) byte for byte, and reads the
// meaning of those it receives (K, L, m); the golden file holds a frame of
// every kind PROTOCOL.md lists, at the version Go speaks.
func TestGoldenRuntimeKinds(t *testing.T) {
	b, err := os.ReadFile("testdata/frames.json")
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if g.Version != protocolVersion {
		t.Errorf("golden version %d, Go speaks %d", g.Version, protocolVersion)
	}
	kinds := map[string]bool{"R": true, "S": true} // the golden request and head, beside the list
	for _, f := range g.Frames {
		kinds[f.Kind] = true
		want, err := hex.DecodeString(f.Frame)
		if err != nil || len(want) < HeaderLen {
			t.Fatalf("%s: bad golden frame %q", f.Name, f.Frame)
		}
		kind, id, n := frameHeader(want)
		p := want[HeaderLen:]
		if string(rune(kind)) != f.Kind || id != f.ID || int(n) != len(p) {
			t.Errorf("%s: header read as %c %d %d", f.Name, kind, id, n)
			continue
		}
		var got, meant any
		switch {
		case f.Kind == "M" && f.Box != "":
			box, _ := hex.DecodeString(f.Box)
			got, meant = hex.EncodeToString(AppendFrame(nil, kControl, f.ID, controlPayload(ctlAMP, box))), f.Frame
		case f.Kind == "M":
			got, meant = hex.EncodeToString(AppendFrame(nil, kControl, f.ID, controlPayload(ctlLine, []byte(f.Line)))), f.Frame
		case f.Kind == "C" && f.Timeout:
			got, meant = hex.EncodeToString(AppendFrame(nil, KindCancel, f.ID, []byte(cancelTimeout))), f.Frame
		case f.Kind == "K":
			py, err := parseReady(p)
			got, meant = fmt.Sprint(py, err), fmt.Sprint(f.Python, nil)
		case f.Kind == "L":
			got, meant = string(p), f.Text
		case f.Kind == "m":
			answer, err := parseAnswer(p)
			var he *HandlerError
			var de *DeclaredError
			switch {
			case err == nil:
				got = fmt.Sprint(0, string(answer))
			case errors.As(err, &he):
				got = fmt.Sprint(1, he.Traceback)
			case errors.As(err, &de):
				got = fmt.Sprint(2, hex.EncodeToString(de.DeclaredAnswer()))
			}
			meant = fmt.Sprint(f.Status, f.Answer)
		default:
			continue // an adapter's kind
		}
		if got != meant {
			t.Errorf("%s: Go makes or reads %v, want %v", f.Name, got, meant)
		}
	}
	for _, k := range "RBYCWKSDFrXELMm" {
		if !kinds[string(k)] {
			t.Errorf("no golden frame of kind %c", k)
		}
	}
}

// TestParseReady: a K frame names the protocol's version, which must be
// Go's.
func TestParseReady(t *testing.T) {
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

// TestWorkerPy runs torsion_worker's unit tests (testdata/test_worker.py: the
// golden frames, and a real exchange with torsion_worker on a socket pair)
// under CPython and PyPy.
func TestWorkerPy(t *testing.T) {
	t.Parallel()
	// Python reads the tests, not Go: opened here too, they are in what
	// go test's cache checks, so an edited test runs again.
	tests, _ := filepath.Glob("testdata/*.py")
	for _, f := range append(tests, "testdata/frames.json") {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatal(err)
		}
	}
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

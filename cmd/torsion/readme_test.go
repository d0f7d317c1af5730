package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeCommands runs every torsion command in README.md's code blocks
// as written, from a directory laid out as the repository (following the
// blocks' cd lines, and running their openssl and mkdir lines), with one
// change: each port becomes a free one on 127.0.0.1, as tests listen
// nowhere else. Each command must start serving, and one that serves
// plain HTTP must answer / with less than 500. Commands other tests run
// are named in covered.
func TestReadmeCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	needPython(t, "flask", "django", "pyramid", "webob", "werkzeug")
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("../..")
	world := t.TempDir()
	if err := os.Symlink(filepath.Join(repo, "examples"), filepath.Join(world, "examples")); err != nil {
		t.Fatal(err)
	}
	covered := map[string]string{
		"torsion procmon": "TestProcmon (its HAProxy configuration has fixed ports)",
	}
	ran := 0
	for _, block := range codeBlocks(string(readme)) {
		dir := world
		for _, line := range block {
			line = stripComment(line)
			words := shellWords(line)
			if len(words) == 0 {
				continue
			}
			switch words[0] {
			case "cd":
				dir = filepath.Join(dir, words[1])
				continue
			case "openssl", "mkdir", "ssh-keygen":
				cmd := exec.Command("sh", "-c", line)
				cmd.Dir = dir
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", line, err, out)
				}
				continue
			case "torsion":
			default:
				continue // go run, scripts, clients: run by the tests of what they show
			}
			if len(words) > 1 && covered["torsion "+words[1]] != "" {
				t.Logf("%s: covered by %s", line, covered["torsion "+words[1]])
				continue
			}
			ran++
			t.Run(line, func(t *testing.T) { runReadmeCommand(t, dir, words[1:]) })
		}
	}
	if ran < 20 {
		t.Errorf("only %d torsion commands found in README.md", ran)
	}
}

// runReadmeCommand runs torsion with args in dir, ports moved to free ones.
func runReadmeCommand(t *testing.T, dir string, args []string) {
	if n := len(args); n > 0 && args[n-1] == "&" {
		args = args[:n-1]
	}
	if len(args) == 0 || args[len(args)-1] == "--help" || args[0] == "--help" {
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	var first, kind string // the first port, and its endpoint's kind
	endpointRE := regexp.MustCompile(`(tcp6?|ssl):\d+`)
	listens := false
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case (a == "-b" || a == "--bind") && i+1 < len(args):
			port := freePort(t)
			args[i+1] = regexp.MustCompile(`:\d+$`).ReplaceAllString(args[i+1], ":"+port)
			listens, first, kind = true, orString(first, port), orString(kind, "tcp")
			i++
		case endpointRE.MatchString(a):
			port := freePort(t)
			m := endpointRE.FindStringSubmatch(a)
			k := strings.TrimSuffix(m[1], "6")
			a = strings.Replace(a, m[0], k+":"+port, 1)
			a = regexp.MustCompile(`:interface=[^:]*`).ReplaceAllString(a, "")
			args[i] = a + ":interface=127.0.0.1"
			if i > 0 && slices.Contains([]string{"--port", "-p", "--listen", "--smtp", "--pop3"}, args[i-1]) {
				listens = true
				if first == "" {
					first, kind = port, k
					if strings.HasPrefix(a, "haproxy:") || strings.HasPrefix(a, "txsni:") {
						kind = "other"
					}
				}
			}
		case args[0] == "dns" && (a == "-p" || a == "--port") && i+1 < len(args):
			args[i+1] = freePort(t) // the interface is 127.0.0.1 in the README already
			listens, kind = true, "other"
			i++
		case strings.HasPrefix(a, "unix:/"):
			short, err := os.MkdirTemp("", "rd") // a socket's path has 108 bytes at most
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(short) })
			args[i] = "unix:" + filepath.Join(short, "web.sock") + a[strings.IndexByte(a[5:], ':')+5:]
			listens = true
			kind = orString(kind, "other")
		}
	}
	if !listens {
		first, kind = freePort(t), "tcp"
		args = append(args, "--port", "tcp:"+first+":interface=127.0.0.1")
	}
	if args[0] != "web" {
		kind = "other" // not HTTP
	}
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	p := startCmd(t, cmd)
	p.waitLog(`starting on`)
	switch kind {
	case "tcp":
		if code := curl(t, "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:"+first+"/"); code == "" || code[0] >= '5' {
			t.Errorf("GET / answered %s; log:\n%s", code, p.logText())
		}
	case "ssl":
		if code := curl(t, "-k", "-o", "/dev/null", "-w", "%{http_code}", "https://127.0.0.1:"+first+"/"); code == "" || code[0] >= '5' {
			t.Errorf("GET / answered %s; log:\n%s", code, p.logText())
		}
	}
	p.stopOK()
}

func orString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// codeBlocks returns README's indented code blocks, continuation lines
// (ending in \) joined.
func codeBlocks(md string) [][]string {
	var blocks [][]string
	var cur []string
	pending := ""
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "    ") {
			if len(cur) > 0 {
				blocks = append(blocks, cur)
				cur = nil
			}
			continue
		}
		line = strings.TrimSpace(line)
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		cur = append(cur, pending+line)
		pending = ""
	}
	return append(blocks, cur)
}

// stripComment removes a shell comment that is outside quotes.
func stripComment(line string) string {
	quote := byte(0)
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' '):
			return strings.TrimSpace(line[:i])
		}
	}
	return line
}

// shellWords splits a line as sh would, for the quoting README uses.
func shellWords(line string) []string {
	var words []string
	var w strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				w.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words
}

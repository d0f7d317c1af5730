package web

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torsion-server/torsion/internal/testutil"
)

// tree makes a directory to serve, a secret file beside it and links.
func tree(t *testing.T) (root, secret string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	files := map[string]string{
		"a.txt":                "hello, world\n",
		"style.css":            "body{}",
		"page.html":            "<p>page</p>",
		"withindex/index.html": "<p>index</p>",
		"listed/<b>&\"x.txt":   "x",
		"listed/sub/z.txt":     "z",
		"digits.txt":           "0123456789",
	}
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret = filepath.Join(base, "secret.txt")
	os.WriteFile(secret, []byte("secret"), 0o644)
	os.Symlink(secret, filepath.Join(root, "out-link"))
	os.Symlink(base, filepath.Join(root, "out-dir"))
	os.Symlink("a.txt", filepath.Join(root, "in-link"))
	return root, secret
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// raw sends a request exactly as written and returns the response.
func raw(t *testing.T, addr, req string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(req)[0]})
	if err != nil {
		t.Fatalf("reading response to %q: %v", req, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func get(path string, headers ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\n" + strings.Join(headers, "") + "Connection: close\r\n\r\n"
}

func TestStatic(t *testing.T) {
	root, _ := tree(t)
	s, err := NewStatic(root, StaticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	fi, _ := os.Stat(filepath.Join(root, "a.txt"))
	tag := etag(fi)
	lastMod := fi.ModTime().UTC().Format(http.TimeFormat)

	tests := []struct {
		name    string
		req     string
		status  int
		body    string            // exact body, if not empty
		has     []string          // substrings of the body
		headers map[string]string // exact header values
	}{
		{"file", get("/a.txt"), 200, "hello, world\n", nil, map[string]string{"Content-Type": "text/plain; charset=utf-8", "Etag": tag, "Last-Modified": lastMod, "Content-Length": "13"}},
		{"head", "HEAD /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 200, "", nil, map[string]string{"Content-Length": "13"}},
		{"css type", get("/style.css"), 200, "body{}", nil, map[string]string{"Content-Type": "text/css; charset=utf-8"}},
		{"html type", get("/page.html"), 200, "", nil, map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{"index", get("/withindex/"), 200, "<p>index</p>", nil, nil},
		{"listing escapes names", get("/listed/"), 200, "", []string{`href="%3Cb%3E&amp;%22x.txt"`, `&lt;b&gt;&amp;&#34;x.txt`, `href="sub/"`}, map[string]string{"Content-Type": "text/html; charset=utf-8"}},
		{"directory redirect", get("/listed?q=1"), 301, "", nil, map[string]string{"Location": "listed/?q=1"}},
		{"missing", get("/nope.txt"), 404, "", nil, nil},
		{"not modified by etag", get("/a.txt", "If-None-Match: "+tag+"\r\n"), 304, "", nil, nil},
		{"not modified by date", get("/a.txt", "If-Modified-Since: "+lastMod+"\r\n"), 304, "", nil, nil},
		{"stale etag", get("/a.txt", "If-None-Match: \"other\"\r\n"), 200, "hello, world\n", nil, nil},
		{"range", get("/digits.txt", "Range: bytes=2-4\r\n"), 206, "234", nil, map[string]string{"Content-Range": "bytes 2-4/10"}},
		{"suffix range", get("/digits.txt", "Range: bytes=-3\r\n"), 206, "789", nil, nil},
		{"multiple ranges", get("/digits.txt", "Range: bytes=0-0,8-9\r\n"), 206, "", []string{"Content-Range: bytes 0-0/10", "Content-Range: bytes 8-9/10", "\r\n\r\n89\r\n"}, nil},
		// Overlapping parts, or more than 16, get the whole file, as
		// Apache answers past MaxRanges: 9,000 copies of one range were
		// once a 206 of 9,000 parts.
		{"overlapping ranges", get("/digits.txt", "Range: bytes=0-4,2-6\r\n"), 200, "0123456789", nil, nil},
		// RFC 9110 14.2: a range unit the server does not know is ignored
		// (http.ServeContent answers 416).
		{"unknown range unit", get("/digits.txt", "Range: items=0-1\r\n"), 200, "0123456789", nil, nil},
		// A file is no directory: nginx, Apache and Twisted answer 404.
		{"file with a slash", get("/a.txt/"), 404, "", nil, nil},
		{"file with a slash and a dot", get("/a.txt/."), 404, "", nil, nil},
		{"unsatisfiable range", get("/digits.txt", "Range: bytes=20-30\r\n"), 416, "", nil, map[string]string{"Content-Range": "bytes */10"}},
		{"post", "POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, "", nil, map[string]string{"Allow": "GET, HEAD"}},
		{"delete", "DELETE /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405, "", nil, map[string]string{"Allow": "GET, HEAD"}},
		{"link inside root", get("/in-link"), 200, "hello, world\n", nil, nil},

		// Nothing outside the root, however it is spelled.
		{"dot dot", get("/../secret.txt"), 400, "", nil, nil},
		{"dot dot inside", get("/listed/../../secret.txt"), 400, "", nil, nil},
		{"encoded dot dot", get("/%2e%2e/secret.txt"), 400, "", nil, nil},
		{"encoded dot dot upper", get("/%2E%2E/secret.txt"), 400, "", nil, nil},
		{"encoded slash", get("/..%2fsecret.txt"), 404, "", nil, nil},
		{"encoded slash upper", get("/listed%2F..%2F..%2Fsecret.txt"), 404, "", nil, nil},
		{"backslash", get("/..\\secret.txt"), 404, "", nil, nil},
		{"encoded backslash", get("/..%5csecret.txt"), 404, "", nil, nil},
		{"nul", get("/a.txt%00.html"), 400, "", nil, nil},
		{"link out of root", get("/out-link"), 404, "", nil, nil},
		{"through a link out of root", get("/out-dir/secret.txt"), 404, "", nil, nil},
		{"absolute form", "GET http://x/../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 400, "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := raw(t, addr, tt.req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body = %q, want %q", body, tt.body)
			}
			for _, s := range tt.has {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q:\n%s", s, body)
				}
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if strings.Contains(body, "secret") {
				t.Errorf("served the secret: %q", body)
			}
		})
	}
}

// TestStaticRanges: a Range of overlapping parts, or of more than 16, is
// answered with the whole file; once 9,000 copies of one range of a large
// file were a 206 of 9,000 parts, many times the file's size in all.
func TestStaticRanges(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("0123456789"), 10000), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewStatic(dir, StaticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	disjoint := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf("%d-%d", i*100, i*100+9))
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	for _, tt := range []struct {
		name, rng string
		status    int
	}{
		{"copies of one range", "bytes=" + strings.Repeat("0-9,", 999) + "0-9", 200},
		{"overlapping", "bytes=0-499,400-999", 200},
		{"overlap with a suffix", "bytes=99990-99995,-8", 200},
		{"seventeen parts", disjoint(17), 200},
		{"sixteen parts", disjoint(16), 206},
		{"adjacent, not overlapping", "bytes=0-9,10-19", 206},
	} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/big.bin", nil)
		req.Header.Set("Range", tt.rng)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.status || tt.status == 200 && n != 100000 {
			t.Errorf("%s: %d with %d bytes, want %d", tt.name, resp.StatusCode, n, tt.status)
		}
	}
}

// TestListingCap: a listing shows at most maxListing entries and says
// when there are more; a directory of 200,000 files took 2.7 GiB to list.
func TestListingCap(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big")
	os.Mkdir(big, 0o755)
	for i := range maxListing + 5 {
		if err := os.WriteFile(filepath.Join(big, fmt.Sprintf("f%05d", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Mkdir(filepath.Join(dir, "small"), 0o755)
	os.WriteFile(filepath.Join(dir, "small", "a"), nil, 0o644)
	s, err := NewStatic(dir, StaticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	for _, tt := range []struct {
		path string
		rows int
		more bool
	}{{"/big/", maxListing, true}, {"/small/", 1, false}} {
		resp, err := http.Get("http://" + addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		rows := strings.Count(string(body), `<td class="name"><a href="f`) + strings.Count(string(body), `<td class="name"><a href="a"`)
		if more := strings.Contains(string(body), "More entries"); rows != tt.rows || more != tt.more {
			t.Errorf("%s: %d rows, more %v; want %d, %v", tt.path, rows, more, tt.rows, tt.more)
		}
	}
}

func TestStaticOptions(t *testing.T) {
	root, _ := tree(t)
	tests := []struct {
		name   string
		opts   StaticOptions
		path   string
		status int
		body   string
	}{
		{"no listing", StaticOptions{NoListing: true}, "/listed/", 403, ""},
		{"no listing keeps index", StaticOptions{NoListing: true}, "/withindex/", 200, "<p>index</p>"},
		{"follow symlinks", StaticOptions{FollowSymlinks: true}, "/out-link", 200, "secret"},
		{"other index name", StaticOptions{Index: []string{"page.html"}}, "/", 200, "<p>page</p>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewStatic(root, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := raw(t, serve(t, s), get(tt.path))
			if resp.StatusCode != tt.status || tt.body != "" && body != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}

// TestListingNames: a listing under a mount says the mount's path (it
// said "Index of /"), and shows no link that leads out of the root, which
// would be a 404, unless such links are followed.
func TestListingNames(t *testing.T) {
	root, _ := tree(t)
	for _, follow := range []bool{false, true} {
		s, _ := NewStatic(root, StaticOptions{FollowSymlinks: follow})
		site := &Resource{}
		site.Mount("/files", s)
		addr := serve(t, site)
		resp, body := raw(t, addr, get("/files/"))
		if resp.StatusCode != 200 || !strings.Contains(body, "Index of /files/") {
			t.Errorf("follow %v: %d, want a listing titled Index of /files/:\n%s", follow, resp.StatusCode, body)
		}
		if got := strings.Contains(body, `href="out-link"`); got != follow {
			t.Errorf("follow %v: a link out of the root listed: %v", follow, got)
		}
		if !strings.Contains(body, `href="in-link"`) {
			t.Errorf("follow %v: a link within the root is not listed", follow)
		}
	}
}

func TestStaticUnderPrefix(t *testing.T) {
	root, _ := tree(t)
	s, _ := NewStatic(root, StaticOptions{})
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static", s))
	addr := serve(t, mux)
	resp, _ := raw(t, addr, get("/static/listed"))
	if resp.StatusCode != 301 || resp.Header.Get("Location") != "listed/" {
		t.Errorf("redirect = %d %q, want 301 listed/", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := raw(t, addr, get("/static/a.txt")); resp.StatusCode != 200 || body != "hello, world\n" {
		t.Errorf("GET /static/a.txt = %d %q", resp.StatusCode, body)
	}
}

func TestNewStaticErrors(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	for _, dir := range []string{f, filepath.Join(t.TempDir(), "missing")} {
		if _, err := NewStatic(dir, StaticOptions{}); err == nil {
			t.Errorf("NewStatic(%s) succeeded", dir)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 << 20: "10.0 MiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func ExampleStatic() {
	s, err := NewStatic(".", StaticOptions{NoListing: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static", s))
	mux.Handle("/", DemoPage{})
	_ = &http.Server{Addr: "127.0.0.1:8080", Handler: mux}
	fmt.Println("serving", filepath.Base(s.Dir()))
	// Output: serving web
}

// TestStaticCacheNeverStale changes files between requests in the ways a
// deploy does and checks the new content is served at once.
func TestStaticCacheNeverStale(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "f.txt")
	os.WriteFile(p, []byte("version 1"), 0o644)
	s, err := NewStatic(root, StaticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	check := func(want string) {
		t.Helper()
		for i := 0; i < 2; i++ { // the second request is served from the cache
			if _, body := raw(t, addr, get("/f.txt")); body != want {
				t.Fatalf("request %d: body %q, want %q", i, body, want)
			}
		}
	}
	check("version 1")

	// Rewritten in place, same size.
	os.WriteFile(p, []byte("version 2"), 0o644)
	future := time.Now().Add(time.Hour)
	os.Chtimes(p, future, future)
	check("version 2")

	// Replaced by rename with the same size and modification time: only
	// the inode differs.
	tmp := filepath.Join(root, "tmp")
	os.WriteFile(tmp, []byte("version 3"), 0o644)
	os.Chtimes(tmp, future, future)
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	check("version 3")

	// Grown past the cache limit: served from disk.
	big := strings.Repeat("x", 100<<10)
	os.WriteFile(p, []byte(big), 0o644)
	check(big)

	os.Remove(p)
	if resp, _ := raw(t, addr, get("/f.txt")); resp.StatusCode != 404 {
		t.Errorf("removed file: status %d", resp.StatusCode)
	}
}

func TestStaticPrecompressed(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"app.js":         "console.log('plain')",
		"app.js.gz":      "GZ",
		"app.js.br":      "BR",
		"only-gz.css":    "body{}",
		"only-gz.css.gz": "GZCSS",
		"noext":          "plain",
		"noext.gz":       "GZ",
	}
	for name, body := range files {
		os.WriteFile(filepath.Join(root, name), []byte(body), 0o644)
	}
	s, err := NewStatic(root, StaticOptions{Precompressed: true, CacheControl: "public, max-age=60"})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	client := &http.Transport{DisableCompression: true} // sends Accept-Encoding as given
	defer client.CloseIdleConnections()
	tests := []struct {
		path, accept          string
		body, encoding, ctype string
	}{
		{"/app.js", "", "console.log('plain')", "", "text/javascript; charset=utf-8"},
		{"/app.js", "gzip, deflate, br", "BR", "br", "text/javascript; charset=utf-8"},
		{"/app.js", "gzip", "GZ", "gzip", "text/javascript; charset=utf-8"},
		{"/app.js", "br;q=0, gzip;q=0.5", "GZ", "gzip", "text/javascript; charset=utf-8"},
		{"/app.js", "*", "BR", "br", "text/javascript; charset=utf-8"},
		{"/app.js", "*, br;q=0", "GZ", "gzip", "text/javascript; charset=utf-8"},
		{"/app.js", "identity", "console.log('plain')", "", "text/javascript; charset=utf-8"},
		{"/only-gz.css", "br", "body{}", "", "text/css; charset=utf-8"},
		{"/only-gz.css", "br, GZIP", "GZCSS", "gzip", "text/css; charset=utf-8"},
		{"/noext", "gzip", "plain", "", "text/plain; charset=utf-8"},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest("GET", "http://"+addr+tt.path, nil)
		if tt.accept != "" {
			req.Header.Set("Accept-Encoding", tt.accept)
		}
		resp, err := client.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if string(body) != tt.body || h.Get("Content-Encoding") != tt.encoding || h.Get("Content-Type") != tt.ctype {
			t.Errorf("%s (Accept-Encoding %q): %q encoding %q type %q, want %q %q %q", tt.path, tt.accept,
				body, h.Get("Content-Encoding"), h.Get("Content-Type"), tt.body, tt.encoding, tt.ctype)
		}
		// Every answer for a file with a variant varies, compressed or not.
		if varies := tt.path != "/noext"; varies != (h.Get("Vary") == "Accept-Encoding") {
			t.Errorf("%s (%q): Vary %q", tt.path, tt.accept, h.Get("Vary"))
		}
		if h.Get("Cache-Control") != "public, max-age=60" {
			t.Errorf("%s: Cache-Control %q", tt.path, h.Get("Cache-Control"))
		}
	}
	// Errors carry neither the encoding nor the cache policy.
	req, _ := http.NewRequest("GET", "http://"+addr+"/missing.js", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := client.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Cache-Control") != "" {
		t.Errorf("missing: %d %v", resp.StatusCode, resp.Header)
	}
}

// serveCached answers as http.ServeContent does (with torsion's error
// pages), whichever of its paths a request takes.
func TestServeCachedAsServeContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.txt")
	os.WriteFile(p, []byte("0123456789abcdef"), 0o644)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	e := newFileCache(1<<20, 1<<20).put("f.txt", fi, data)
	lastMod := fi.ModTime().UTC().Format(http.TimeFormat)
	cases := []struct {
		method string
		header []string // name, value pairs
		preset []string // response headers set before
	}{
		{method: "GET"},
		{method: "HEAD"},
		{method: "POST"},
		{method: "GET", header: []string{"Range", "bytes=2-5"}},
		{method: "GET", header: []string{"Range", "bytes=99-"}},
		{method: "GET", header: []string{"If-None-Match", e.etag}},
		{method: "GET", header: []string{"If-None-Match", `"other"`}},
		{method: "GET", header: []string{"If-Modified-Since", lastMod}},
		{method: "GET", header: []string{"If-Unmodified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}},
		{method: "GET", header: []string{"If-Match", `"other"`}},
		{method: "GET", header: []string{"If-Range", `"other"`, "Range", "bytes=0-1"}},
		{method: "GET", preset: []string{"Content-Encoding", "gzip"}},
		{method: "GET", preset: []string{"Cache-Control", "max-age=60", "Content-Type", "text/x-mine"}},
	}
	for _, c := range cases {
		name := c.method + " " + strings.Join(c.header, " ") + " " + strings.Join(c.preset, " ")
		t.Run(name, func(t *testing.T) {
			do := func(serve func(w http.ResponseWriter, r *http.Request)) *httptest.ResponseRecorder {
				r := httptest.NewRequest(c.method, "/f.txt", nil)
				for i := 0; i < len(c.header); i += 2 {
					r.Header.Set(c.header[i], c.header[i+1])
				}
				w := httptest.NewRecorder()
				for i := 0; i < len(c.preset); i += 2 {
					w.Header().Set(c.preset[i], c.preset[i+1])
				}
				serve(w, r)
				return w
			}
			got := do(func(w http.ResponseWriter, r *http.Request) { serveCached(w, r, e) })
			want := do(func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				if h.Get("Etag") == "" {
					h.Set("Etag", e.etag)
				}
				if h.Get("Content-Type") == "" {
					h.Set("Content-Type", e.ctype)
				}
				serveContent(w, r, "", e.modTime, strings.NewReader(string(e.data)))
			})
			if got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Errorf("got %d %q, want %d %q", got.Code, got.Body, want.Code, want.Body)
			}
			if g, w := fmt.Sprint(got.Header()), fmt.Sprint(want.Header()); g != w {
				t.Errorf("header\n got %s\nwant %s", g, w)
			}
		})
	}
}

// TestPages: the pages torsion makes itself share one inline stylesheet,
// are readable on a phone and in dark mode, load nothing else, and say
// each thing once; a listing links to its parent; ServeContent's errors
// get the HTML page too.
func TestPages(t *testing.T) {
	root, _ := tree(t)
	s, err := NewStatic(root, StaticOptions{})
	if err != nil {
		t.Fatal(err)
	}
	site := serve(t, s)
	demo := serve(t, DemoPage{})
	cases := []struct {
		name, addr, req string
		code            int
		want, not       []string
	}{
		{"demo", demo, get("/"), 200, []string{"Hello from torsion!"}, nil},
		{"demo 404", demo, get("/nope"), 404, []string{`<span class="code">404</span>Not Found</h1>`, "There is nothing at this address."}, nil},
		{"demo 405", demo, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 405, []string{"Method Not Allowed"}, nil},
		{"root listing", site, get("/listed/"), 200, []string{`<a href="../">../</a>`, `<a href="sub/">sub/</a>`, "Index of /listed/"}, nil},
		{"416", site, get("/digits.txt", "Range: bytes=99-\r\n"), 416, []string{"Range Not Satisfiable", "The range asked for is not in the file."}, []string{"invalid range"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := raw(t, c.addr, c.req)
			if resp.StatusCode != c.code || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
				t.Errorf("%d %q, want %d text/html", resp.StatusCode, resp.Header.Get("Content-Type"), c.code)
			}
			for _, w := range append(c.want, `<meta charset="utf-8">`, `name="viewport"`, "prefers-color-scheme:dark", "<footer>torsion</footer>") {
				if !strings.Contains(body, w) {
					t.Errorf("the page lacks %q:\n%s", w, body)
				}
			}
			for _, n := range append(c.not, "http://", "https://", "<link", "<script", "<img") {
				if strings.Contains(body, n) {
					t.Errorf("the page has %q:\n%s", n, body)
				}
			}
			if n := strings.Count(body, "<style>"); n != 1 {
				t.Errorf("%d stylesheets", n)
			}
			main := body[strings.Index(body, "<main>"):]
			if text := http.StatusText(c.code); c.code >= 400 && strings.Count(main, text) != 1 {
				t.Errorf("the page says %q %d times:\n%s", text, strings.Count(main, text), main)
			}
		})
	}
	// The root's listing has no parent link.
	if _, body := raw(t, site, get("/")); strings.Contains(body, `href="../"`) {
		t.Errorf("the root's listing links to a parent:\n%s", body)
	}
}

// TestStaticVariantAppears: a file found to have no precompressed variant
// is taken to have none for a second (no stat per variant per request),
// and a variant made beside it is served once that second has passed.
func TestStaticVariantAppears(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, "late.css"), []byte("body{}"), 0o644)
	s, err := NewStatic(root, StaticOptions{Precompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	get := func() string {
		r := httptest.NewRequest("GET", "/late.css", nil)
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w.Body.String()
	}
	if got := get(); got != "body{}" {
		t.Fatalf("before: %q", got)
	}
	if !s.plain.known("late.css", time.Now().UnixNano()) {
		t.Error("the file without variants is not remembered")
	}
	os.WriteFile(filepath.Join(root, "late.css.gz"), []byte("GZ"), 0o644)
	began := time.Now()
	testutil.WaitUntil(10*time.Second, func() bool { return get() == "GZ" }, func() { t.Fatal("the new variant was never served") })
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("the variant was served %v after it appeared, want about a second at most", waited)
	}
}

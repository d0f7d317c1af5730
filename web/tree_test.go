package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoPath answers "name script=S path=P raw=R".
func echoPath(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s script=%s path=%s raw=%s", name, ScriptName(r), r.URL.Path, r.URL.EscapedPath())
	})
}

func TestResource(t *testing.T) {
	root := &Resource{Handler: echoPath("app")}
	root.Mount("/static", echoPath("static"))
	root.Mount("/api/v1", echoPath("v1"))
	root.Mount("/docs/", &Resource{}) // a node without a handler
	root.Mount("/docs/en", echoPath("en"))
	users := &Resource{Handler: echoPath("users")}
	users.Dynamic = func(name string, r *http.Request) http.Handler {
		if strings.HasPrefix(name, "u") {
			return echoPath("user " + name)
		}
		return nil
	}
	root.PutChild("users", users)

	noRoot := &Resource{}
	noRoot.Mount("/only", echoPath("only"))

	tests := []struct {
		h    http.Handler
		path string
		want string // body, or "404"
	}{
		{root, "/", "app script= path=/ raw=/"},
		{root, "/index", "app script= path=/index raw=/index"},
		{root, "/static", "static script=/static path= raw="},
		{root, "/static/", "static script=/static path=/ raw=/"},
		{root, "/static/css/a.css", "static script=/static path=/css/a.css raw=/css/a.css"},
		{root, "/%73tatic/a", "static script=/static path=/a raw=/a"},
		{root, "/staticx/a", "app script= path=/staticx/a raw=/staticx/a"},
		{root, "/static/a%2Fb", "static script=/static path=/a/b raw=/a%2Fb"},
		{root, "/api/v1/items?x=1", "v1 script=/api/v1 path=/items raw=/items"},
		{root, "/api/v2/items", "app script= path=/api/v2/items raw=/api/v2/items"},
		{root, "/api", "app script= path=/api raw=/api"},
		{root, "/docs/en/x", "en script=/docs/en path=/x raw=/x"},
		{root, "/docs/fr", "app script= path=/docs/fr raw=/docs/fr"},
		{root, "//static/a", "app script= path=//static/a raw=//static/a"},
		{root, "/users", "users script=/users path= raw="},
		{root, "/users/u42/posts", "user u42 script=/users/u42 path=/posts raw=/posts"},
		{root, "/users/x", "users script=/users path=/x raw=/x"},
		{root, "/a%20b/", "app script= path=/a b/ raw=/a%20b/"},
		{noRoot, "/only/x", "only script=/only path=/x raw=/x"},
		{noRoot, "/other", "404"},
		{noRoot, "/", "404"},
	}
	for _, tt := range tests {
		addr := serve(t, tt.h)
		resp, err := http.Get("http://" + addr + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := string(body)
		if tt.want == "404" {
			if resp.StatusCode != 404 {
				t.Errorf("GET %s: %d %q, want 404", tt.path, resp.StatusCode, got)
			}
			continue
		}
		if got != tt.want {
			t.Errorf("GET %s:\n got %q\nwant %q", tt.path, got, tt.want)
		}
	}
}

// A tree inside a tree adds to the script name.
func TestResourceNested(t *testing.T) {
	inner := &Resource{}
	inner.Mount("/b", echoPath("b"))
	outer := &Resource{}
	outer.Mount("/a", inner)
	rec := httptest.NewRecorder()
	outer.ServeHTTP(rec, httptest.NewRequest("GET", "/a/b/c", nil))
	if got, want := rec.Body.String(), "b script=/a/b path=/c raw=/c"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	// Mounting a handler where a node exists keeps the node's children.
	outer.Mount("/a", echoPath("a"))
	for path, want := range map[string]string{"/a/b/c": "b script=/a/b path=/c raw=/c", "/a/z": "a script=/a path=/z raw=/z"} {
		rec := httptest.NewRecorder()
		outer.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Body.String() != want {
			t.Errorf("%s: got %q, want %q", path, rec.Body.String(), want)
		}
	}
}

func TestVHosts(t *testing.T) {
	v := &VHosts{}
	for host, name := range map[string]string{
		"example.org":       "main",
		"API.example.org":   "api",
		"*.example.org":     "wild",
		"*.eu.example.org":  "eu",
		"[::1]":             "v6",
		"trailing.example.": "dot",
	} {
		if err := v.Add(host, echoPath(name)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ host, want string }{
		{"example.org", "main"},
		{"EXAMPLE.ORG:8080", "main"},
		{"example.org.", "main"},
		{"api.example.org", "api"},
		{"www.example.org", "wild"},
		{"a.b.example.org", "wild"},
		{"x.eu.example.org", "eu"},
		{"eu.example.org", "wild"},
		{"[::1]:80", "v6"},
		{"trailing.example", "dot"},
		{"other.org", "404"},
		{"", "404"},
		{"xexample.org", "404"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/p", nil)
		r.Host = tt.host
		v.ServeHTTP(rec, r)
		got, _, _ := strings.Cut(rec.Body.String(), " ")
		if tt.want == "404" {
			if rec.Code != 404 {
				t.Errorf("Host %q: %d %q, want 404", tt.host, rec.Code, rec.Body.String())
			}
			continue
		}
		if got != tt.want {
			t.Errorf("Host %q: got %q, want %q", tt.host, got, tt.want)
		}
	}
	v.Default = echoPath("default")
	rec := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/p", nil)
	r.Host = "other.org"
	v.ServeHTTP(rec, r)
	if !strings.HasPrefix(rec.Body.String(), "default ") {
		t.Errorf("unknown host with a default: %q", rec.Body.String())
	}
	for _, bad := range []string{"*example.org", "*.", "a.*.org", "", "example.org"} {
		if err := v.Add(bad, echoPath("x")); err == nil {
			t.Errorf("Add(%q) succeeded", bad)
		}
	}
}

package web_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/torsion-server/torsion/web"
)

// A resource tree: an application at the root that sees every path no
// child takes (Twisted's DelegatingResource), and another mounted below.
func ExampleResource() {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app: script %q, path %q", web.ScriptName(r), r.URL.Path)
	})
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api: script %q, path %q", web.ScriptName(r), r.URL.Path)
	})
	root := &web.Resource{Handler: app}
	root.Mount("/api/v1", api)

	for _, path := range []string{"/", "/about", "/api/v1/users/7", "/api/v2"} {
		rec := httptest.NewRecorder()
		root.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(rec.Body)
	}
	// Output:
	// app: script "", path "/"
	// app: script "", path "/about"
	// api: script "/api/v1", path "/users/7"
	// app: script "", path "/api/v2"
}

// Virtual hosts, Twisted's NameVirtualHost: names, wildcards and a default.
func ExampleVHosts() {
	say := func(s string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
	}
	hosts := &web.VHosts{Default: say("default site")}
	hosts.Add("app.example.org", say("the application"))
	hosts.Add("*.static.example.org", say("static files"))

	for _, host := range []string{"app.example.org", "CDN.static.example.org:8443", "localhost"} {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/", nil)
		r.Host = host
		hosts.ServeHTTP(rec, r)
		fmt.Printf("%s: %s\n", host, rec.Body)
	}
	// Output:
	// app.example.org: the application
	// CDN.static.example.org:8443: static files
	// localhost: default site
}

// A reverse proxy mounted at /backend: the backend sees the rest of the
// path under its own prefix, and who the client was.
func ExampleNewProxy() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "backend got %s (X-Forwarded-Proto %s)", r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}))
	defer backend.Close()
	proxy, err := web.NewProxy(backend.URL+"/v2", web.ProxyOptions{})
	if err != nil {
		panic(err)
	}
	root := &web.Resource{}
	root.Mount("/backend", proxy)

	rec := httptest.NewRecorder()
	root.ServeHTTP(rec, httptest.NewRequest("GET", "/backend/items", nil))
	fmt.Println(rec.Body)
	// Output: backend got /v2/items (X-Forwarded-Proto http)
}

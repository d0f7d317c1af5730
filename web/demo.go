package web

import (
	"net/http"
	"strconv"
)

var demoPage = page("torsion", `<h1>Hello from torsion!</h1>
<p>This is the demo page of <code>torsion web</code>, served because it was given nothing else to serve. To serve something real:</p>
<ul>
<li><code>torsion web --path ./site</code> serves a directory,</li>
<li><code>torsion web --wsgi app:application</code> serves a Python WSGI application (Flask, Django, Pyramid),</li>
<li><code>torsion web --asgi main:app</code> serves an ASGI application (FastAPI, Starlette, Quart, Django), WebSockets too,</li>
<li><code>torsion web --help</code> lists every option.</li>
</ul>`)

// DemoPage serves torsion's demo page at "/" and 404 elsewhere, as
// "twist web" does when given nothing to serve.
type DemoPage struct{}

// ServeHTTP implements http.Handler.
func (DemoPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		Error(w, r, http.StatusMethodNotAllowed, "")
	case r.URL.Path != "/":
		Error(w, r, http.StatusNotFound, "")
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(demoPage)))
		if r.Method == http.MethodGet {
			w.Write([]byte(demoPage))
		}
	}
}

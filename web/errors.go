package web

import (
	"html"
	"net/http"
	"strconv"
)

// Error answers with a small HTML page for status code, as Twisted's
// ErrorPage does: the status text as title and detail (plain text, escaped
// here) as body. HEAD requests get the headers only.
func Error(w http.ResponseWriter, r *http.Request, code int, detail string) {
	text := http.StatusText(code)
	if detail == "" {
		detail = text + "."
	}
	body := "<!DOCTYPE html>\n<html><head><title>" + strconv.Itoa(code) + " " + text +
		"</title></head>\n<body><h1>" + text + "</h1>\n<p>" + html.EscapeString(detail) + "</p></body></html>\n"
	h := w.Header()
	h.Del("Etag")
	h.Del("Last-Modified")
	h.Del("Content-Encoding")
	h.Del("Cache-Control")
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write([]byte(body))
	}
}

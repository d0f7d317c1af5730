package web

import (
	"html"
	"log/slog"
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

// Refusals returns what httpserver.Options.Refuse wants: it answers a
// request the server refused with Error's page, and logs it to log in the
// access log's format, as AccessLog logs the requests a handler serves.
func Refusals(log *slog.Logger) func(w http.ResponseWriter, r *http.Request, code int, msg string) {
	return func(w http.ResponseWriter, r *http.Request, code int, msg string) {
		AccessLog(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			Error(w, r, code, msg)
		}), log).ServeHTTP(w, r)
	}
}

package web

import (
	"html"
	"log/slog"
	"net/http"
	"strconv"
)

// Error answers with a small HTML page for status code, as Twisted's
// ErrorPage does: the code and status text as title and heading, and
// detail (plain text, escaped here) below, or a sentence saying what the
// code means. HEAD requests get the headers only.
func Error(w http.ResponseWriter, r *http.Request, code int, detail string) {
	text := http.StatusText(code)
	if detail == "" {
		detail = errorDetails[code]
	}
	heading := "<h1><span class=\"code\">" + strconv.Itoa(code) + "</span>" + html.EscapeString(text) + "</h1>"
	if detail != "" {
		heading += "\n<p>" + html.EscapeString(detail) + "</p>"
	}
	body := page(strconv.Itoa(code)+" "+text, heading)
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

// errorDetails say what the common error codes mean, for a page given no
// detail.
var errorDetails = map[int]string{
	http.StatusBadRequest:                   "The server could not read the request.",
	http.StatusForbidden:                    "You may not see what is at this address.",
	http.StatusNotFound:                     "There is nothing at this address.",
	http.StatusMethodNotAllowed:             "This address does not take that method.",
	http.StatusRequestedRangeNotSatisfiable: "The range asked for is not in the file.",
	http.StatusPreconditionFailed:           "The resource is not as the request's conditions require.",
	http.StatusInternalServerError:          "The server failed to answer; the log says why.",
	http.StatusBadGateway:                   "The server behind this one did not answer properly.",
	http.StatusServiceUnavailable:           "The server cannot answer now; try again shortly.",
	http.StatusGatewayTimeout:               "The server behind this one took too long to answer.",
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

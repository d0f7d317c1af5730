package web

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/torsion-server/torsion/logging"
)

// BenchmarkAccessLog is what each request's access line costs, from the
// answer to the bytes in the log's buffer, in each log layout.
func BenchmarkAccessLog(b *testing.B) {
	plain := func() *slog.Logger {
		return slog.New(logging.NewPlainHandler(logging.NewBufferedWriter(io.Discard, time.Second)))
	}
	text := func() *slog.Logger {
		l, _ := logging.New(logging.NewBufferedWriter(io.Discard, time.Second), "text", slog.LevelInfo)
		return l.With(logging.SystemKey, "access")
	}
	json := func() *slog.Logger {
		l, _ := logging.New(logging.NewBufferedWriter(io.Discard, time.Second), "json", slog.LevelInfo)
		return l.With(logging.SystemKey, "access")
	}
	for _, c := range []struct {
		name string
		h    func(http.Handler) http.Handler
	}{
		{"none", func(h http.Handler) http.Handler { return h }},
		{"plain", func(h http.Handler) http.Handler { return AccessLog(h, plain()) }},
		{"text", func(h http.Handler) http.Handler { return AccessLog(h, text()) }},
		{"json", func(h http.Handler) http.Handler { return StructuredAccessLog(h, json()) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := make([]byte, 1024)
			h := RequestID(c.h(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) })), nil)
			r := httptest.NewRequest("GET", "/static/1k.bin?x=1", nil)
			r.Header.Set("User-Agent", "wrk/4.2.0")
			w := discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (w discardWriter) Header() http.Header         { return w.h }
func (w discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w discardWriter) WriteHeader(int)             {}

package logging_test

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/torsion-server/torsion/logging"
)

// A JSON log: the system once, after the message; durations in seconds.
func ExampleNew() {
	log, _ := logging.New(os.Stdout, "json", slog.LevelInfo)
	log = slog.New(withoutTime{log.Handler()})
	log.With(logging.SystemKey, "web").Warn("slow request", "uri", "/report", "took", 1500*time.Millisecond)
	// Output:
	// {"level":"WARN","msg":"slow request","system":"web","uri":"/report","took":1.5}
}

// Fields encoded once into a buffer, handed to a JSON log: what the
// access log does for every request.
func ExampleJSONFields() {
	log, _ := logging.New(os.Stdout, "json", slog.LevelInfo)
	h := log.With(logging.SystemKey, "access").Handler().(logging.FieldsHandler)
	f := logging.JSONFields(nil).String("method", "GET").Int("status", 200).Float("duration", 0.25)
	h.HandleFields(time.Time{}, "request", f) // a zero time writes none
	// Output:
	// {"level":"INFO","msg":"request","system":"access","method":"GET","status":200,"duration":0.25}
}

// withoutTime drops the records' times, for output that does not change.
type withoutTime struct{ slog.Handler }

func (h withoutTime) Handle(ctx context.Context, r slog.Record) error {
	r.Time = time.Time{}
	return h.Handler.Handle(ctx, r)
}

func (h withoutTime) WithAttrs(as []slog.Attr) slog.Handler {
	return withoutTime{h.Handler.WithAttrs(as)}
}

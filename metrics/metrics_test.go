package metrics

import (
	"net/http"
	"testing"

	"github.com/torsion-server/torsion/workers"
)

func TestLabels(t *testing.T) {
	for _, c := range []struct {
		method string
		status int
		want   [2]string
	}{
		{http.MethodGet, 200, [2]string{"GET", "2xx"}},
		{http.MethodPost, 302, [2]string{"POST", "3xx"}},
		{"PROPFIND", 404, [2]string{"other", "4xx"}},
		{http.MethodTrace, 101, [2]string{"TRACE", "1xx"}},
		{http.MethodDelete, 599, [2]string{"DELETE", "5xx"}},
		{http.MethodGet, 499, [2]string{"GET", "499"}},
		{http.MethodGet, 700, [2]string{"GET", "other"}},
		{http.MethodGet, 0, [2]string{"GET", "other"}},
	} {
		got := [2]string{methods[methodIndex(c.method)], classes[classIndex(c.status)]}
		if got != c.want {
			t.Errorf("%s %d: %v, want %v", c.method, c.status, got, c.want)
		}
	}
}

// fakePool is a PoolStats with fixed numbers.
type fakePool struct{ queued int }

func (f fakePool) Stats() (int, int, int, map[string]uint64) {
	return 1, 0, f.queued, map[string]uint64{"crash": 1}
}
func (fakePool) Workers() []workers.WorkerStatus {
	return []workers.WorkerStatus{{Slot: 1, State: "idle"}}
}
func (fakePool) Scale() (int, int, int) { return 1, 1, 1 }
func (fakePool) Timeouts() uint64       { return 0 }
func (fakePool) QueueWaits() ([]uint64, uint64, float64) {
	return make([]uint64, len(workers.WaitBuckets)+1), 0, 0
}
func (fakePool) WebSockets() int { return 0 }

// TestPools: several pools are exported side by side, each under its
// app; a second pool once panicked as a duplicate registration.
func TestPools(t *testing.T) {
	m := New()
	m.AddPool("site:app", fakePool{queued: 2})
	m.AddPool("api:app", fakePool{queued: 5})
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	queued := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "torsion_wsgi_queued_requests" {
			continue
		}
		for _, metric := range f.GetMetric() {
			queued[metric.GetLabel()[0].GetValue()] = metric.GetGauge().GetValue()
		}
	}
	if queued["site:app"] != 2 || queued["api:app"] != 5 || len(queued) != 2 {
		t.Errorf("queued by app: %v, want site:app 2 and api:app 5", queued)
	}
}

package metrics

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/torsion-server/torsion/web"
	"github.com/torsion-server/torsion/workers"
)

// Status is what the status page shows, as /status.json and each event of
// /events carry it.
type Status struct {
	Version   string       `json:"version"`
	PID       int          `json:"pid"`
	Started   time.Time    `json:"started"`
	Uptime    float64      `json:"uptime_seconds"`
	Listeners []string     `json:"listeners"`
	InFlight  int64        `json:"requests_in_flight"`
	Answered  uint64       `json:"requests_answered"`
	Pools     []PoolStatus `json:"pools"`
}

// PoolStatus is one worker pool on the status page.
type PoolStatus struct {
	App string `json:"app"`
	// Target is how many workers the pool keeps now, between MinWorkers
	// and MaxWorkers (the same when it does not scale).
	Target     int                    `json:"target_workers"`
	MinWorkers int                    `json:"min_workers"`
	MaxWorkers int                    `json:"max_workers"`
	Queued     int                    `json:"queued"`
	Restarts   map[string]uint64      `json:"restarts"`
	Workers    []workers.WorkerStatus `json:"workers"`
}

// Status returns the server's status now.
func (m *Registry) Status() Status {
	s := Status{
		Version:   m.version,
		PID:       os.Getpid(),
		Started:   m.started,
		Uptime:    time.Since(m.started).Seconds(),
		Listeners: append([]string{}, m.Listeners...),
		InFlight:  m.inFlightN.Load(),
		Answered:  m.answered.Load(),
		Pools:     []PoolStatus{},
	}
	for _, p := range m.pools {
		_, _, queued, restarts := p.p.Stats()
		if restarts == nil {
			restarts = map[string]uint64{}
		}
		target, least, most := p.p.Scale()
		s.Pools = append(s.Pools, PoolStatus{App: p.app, Target: target, MinWorkers: least, MaxWorkers: most,
			Queued: queued, Restarts: restarts, Workers: p.p.Workers()})
	}
	return s
}

// EndStreams ends the event streams of the status page, for the server's
// Shutdown (httpserver.Server.RegisterOnShutdown), which would otherwise
// wait for them; browsers reconnect on their own.
func (m *Registry) EndStreams() { m.endOnce.Do(func() { close(m.ending) }) }

// statusEvery is how often /events sends the status.
const statusEvery = time.Second

func (m *Registry) statusJSON(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(m.Status())
}

// events streams the status as server-sent events, one a second, until
// the client leaves (each write is bounded by the server's send timeout).
func (m *Registry) events(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	tick := time.NewTicker(statusEvery)
	defer tick.Stop()
	for {
		b, _ := json.Marshal(m.Status())
		if _, err := w.Write(append(append([]byte("data: "), b...), "\n\n"...)); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-m.ending:
			return
		case <-tick.C:
		}
	}
}

func (m *Registry) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	// The page comes with the status of now, so it shows it at once (and
	// to a browser that takes a screenshot on load); json.Marshal
	// escapes <, > and &, so nothing in it can end the script.
	now, _ := json.Marshal(m.Status())
	w.Write([]byte(strings.Replace(statusPage, "STATUS_NOW", string(now), 1)))
}

// statusPage renders the status it comes with (STATUS_NOW), then each
// event, with the DOM's textContent, never as HTML: request lines come
// from clients.
var statusPage = web.Page("torsion status", `<h1>torsion status</h1>
<p id="summary"></p>
<div id="pools"></div>
<p><a href="status.json">status.json</a> · <a href="metrics">metrics</a> · updated every second</p>
<noscript><p>This page shows the status with JavaScript; without it, read <a href="status.json">status.json</a>.</p></noscript>
<style>td.busy{color:var(--accent);font-weight:600} td.num{text-align:right;font-variant-numeric:tabular-nums} td.req{white-space:normal;overflow-wrap:anywhere}
@media (max-width:32rem){th,td{padding:.35rem .3rem;font-size:.8rem} th{letter-spacing:0} main{padding-left:.75rem;padding-right:.75rem}}</style>
<script>
"use strict";
function el(tag, text, cls) { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; }
function dur(s) { s = Math.floor(s); const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + (d || h || m ? m + "m " : "") + s % 60 + "s"; }
function mib(b) { return b ? (b / 1048576).toFixed(1) + " MiB" : "-"; }
function render(s) {
  const sum = document.getElementById("summary");
  sum.replaceChildren(el("code", s.version), " · pid " + s.pid + " · up " + dur(s.uptime_seconds) + " · " +
    s.requests_in_flight + " in flight · " + s.requests_answered + " answered · listening on " + (s.listeners.join(", ") || "-"));
  const pools = document.getElementById("pools");
  pools.replaceChildren();
  for (const p of s.pools) {
    const r = Object.entries(p.restarts || {}).filter(([, n]) => n > 0).map(([c, n]) => c + " " + n).join(", ");
    pools.append(el("h2", p.app), el("p", p.workers.length + " workers (keeping " + p.target_workers + (p.max_workers > p.min_workers ? " of " + p.min_workers + "–" + p.max_workers : "") + ") · " + p.queued + " queued · restarts: " + (r || "none")));
    const t = el("table"), head = el("tr");
    for (const c of ["#", "pid", "state", "served", "memory", "running"]) head.append(el("th", c));
    t.append(head);
    for (const w of p.workers) {
      const tr = el("tr");
      tr.title = "started for: " + (w.started_because || "-"); // status.json has it too
      tr.append(el("td", "#" + w.slot, "num"), el("td", w.pid || "-", "num"), el("td", w.state, w.state), el("td", w.served, "num"), el("td", mib(w.rss_bytes), "num"));
      const run = w.running.map(q => q.method + " " + q.uri + " (" + q.seconds.toFixed(1) + "s)").join("; ");
      tr.append(el("td", run || "-", "req"));
      t.append(tr);
    }
    const box = el("div", undefined, "scroll"); box.append(t); pools.append(box);
  }
  if (!s.pools.length) pools.append(el("p", "No WSGI or ASGI application is served."));
}
render(STATUS_NOW);
new EventSource("events").onmessage = e => render(JSON.parse(e.data));
</script>`)

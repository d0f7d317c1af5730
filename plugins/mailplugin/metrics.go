package mailplugin

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/torsion-server/torsion/metrics"
)

// mailMetrics is a mailserver.Observer that counts into Prometheus:
// torsion_mail_sessions_total and torsion_mail_logins_total by protocol
// (and result), torsion_mail_deliveries_total by result.
type mailMetrics struct {
	sessions, logins, deliveries *prometheus.CounterVec
}

// newMailMetrics makes the counters and exports them to reg.
func newMailMetrics(reg *metrics.Registry) (*mailMetrics, error) {
	m := &mailMetrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torsion_mail_sessions_total",
			Help: "Client connections, by protocol: smtp or pop3.",
		}, []string{"protocol"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torsion_mail_logins_total",
			Help: "Logins tried (POP3 USER/PASS and APOP, SMTP AUTH), by protocol and whether they succeeded.",
		}, []string{"protocol", "ok"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "torsion_mail_deliveries_total",
			Help: "Messages accepted, by result: delivered (to local Maildirs), relayed (to the smarthost), failed (the client was told to try again).",
		}, []string{"result"}),
	}
	return m, reg.Register(m.sessions, m.logins, m.deliveries)
}

func (m *mailMetrics) Session(proto string) { m.sessions.WithLabelValues(proto).Inc() }
func (m *mailMetrics) Login(proto string, ok bool) {
	m.logins.WithLabelValues(proto, strconv.FormatBool(ok)).Inc()
}
func (m *mailMetrics) Delivery(result string) { m.deliveries.WithLabelValues(result).Inc() }

package dnsplugin

import (
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/torsion-server/torsion/metrics"
)

// answerMetrics exports the server's answers to reg and returns the
// function that counts each (dnsserver.Server.Answered):
// torsion_dns_queries_total by protocol and rcode, and
// torsion_dns_query_duration_seconds.
func answerMetrics(reg *metrics.Registry) (func(network string, rcode int, took time.Duration), error) {
	queries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "torsion_dns_queries_total",
		Help: "DNS queries answered, by protocol (udp, tcp) and rcode (NOERROR, NXDOMAIN, REFUSED, SERVFAIL...).",
	}, []string{"proto", "rcode"})
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "torsion_dns_query_duration_seconds",
		Help: "Time from a query's arrival to its answer's sending; forwarded queries wait for the upstream.",
		// From a 20 µs answer out of the files to an upstream's 5 s timeout.
		Buckets: []float64{0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 5},
	})
	if err := reg.Register(queries, duration); err != nil {
		return nil, err
	}
	return func(network string, rcode int, took time.Duration) {
		name, ok := dns.RcodeToString[rcode]
		if !ok {
			name = "other" // a bounded label
		}
		queries.WithLabelValues(network, name).Inc()
		duration.Observe(took.Seconds())
	}, nil
}

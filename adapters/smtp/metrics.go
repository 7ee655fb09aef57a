package smtp

import "github.com/prometheus/client_golang/prometheus"

// Outcomes counts delivery outcomes as nurture_smtp_attempts_total{outcome}
// (sent, transient, permanent, suppressed, policy, unknown, deferred) on
// reg and returns the function to put in Config.Observe. "policy" counts
// 5.7.x rejections: watch it, it means authentication or reputation trouble.
func Outcomes(reg prometheus.Registerer) (func(outcome string), error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nurture_smtp_attempts_total",
		Help: "SMTP delivery attempts by outcome (sent, transient, permanent, suppressed, policy, unknown, deferred).",
	}, []string{"outcome"})
	if err := reg.Register(c); err != nil {
		return nil, err
	}
	for _, o := range []string{"sent", "transient", "permanent", "suppressed", "policy", "unknown", "deferred"} {
		c.WithLabelValues(o)
	}
	return func(o string) { c.WithLabelValues(o).Inc() }, nil
}

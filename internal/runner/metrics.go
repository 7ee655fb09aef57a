package runner

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	applied, deadLettered, duplicates, nakked prometheus.Counter
	timersFired, escalations                  prometheus.Counter
	sends                                     *prometheus.CounterVec
	batchSize                                 prometheus.Histogram
	ingestDuration, sweepDuration             prometheus.Histogram
	dispatchDuration                          prometheus.Histogram
	lag, ackPending                           prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	durations := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	m := &metrics{
		applied:      prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_events_applied_total", Help: "Lead events applied to lead state."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_events_dead_lettered_total", Help: "Lead events recorded as dead letters (unparseable or refused by the engine)."}),
		duplicates:   prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_events_duplicate_total", Help: "Lead events skipped because their id was already processed."}),
		nakked:       prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_events_nakked_total", Help: "Lead events handed back for redelivery after a transient failure."}),
		timersFired:  prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_timers_fired_total", Help: "Due leads ticked by timer sweeps."}),
		escalations:  prometheus.NewCounter(prometheus.CounterOpts{Name: "nurture_escalations_total", Help: "Escalations (including re-routes) committed."}),
		sends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nurture_outbox_deliveries_total",
			Help: "Outbox delivery outcomes by kind (email, notify.*, event) and outcome (sent, retry, failed, gave_up, unknown, suppressed)."},
			[]string{"kind", "outcome"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nurture_ingest_batch_size", Help: "Messages per ingest batch.",
			Buckets: []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000}}),
		ingestDuration:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nurture_ingest_batch_duration_seconds", Help: "Time to apply and settle one ingest batch.", Buckets: durations}),
		sweepDuration:    prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nurture_sweep_batch_duration_seconds", Help: "Time to run one timer sweep batch.", Buckets: durations}),
		dispatchDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nurture_dispatch_duration_seconds", Help: "Time from claim to recorded outcome of one outbox item.", Buckets: durations}),
		lag:              prometheus.NewGauge(prometheus.GaugeOpts{Name: "nurture_consumer_pending", Help: "Lead events in the stream not yet delivered to a worker."}),
		ackPending:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "nurture_consumer_ack_pending", Help: "Lead events delivered but not yet acknowledged."}),
	}
	for _, c := range []prometheus.Collector{m.applied, m.deadLettered, m.duplicates, m.nakked, m.timersFired, m.escalations,
		m.sends, m.batchSize, m.ingestDuration, m.sweepDuration, m.dispatchDuration, m.lag, m.ackPending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

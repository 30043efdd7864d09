package redislayer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics time the layer's Redis calls and count what it loses.
type metrics struct {
	seconds      *prometheus.HistogramVec
	overCapacity prometheus.Counter
	undecodable  prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sidecar_redis_seconds",
			Help:    "Time of the channel layer's Redis calls, by operation (group_add, group_discard, group_send, receive: one pop).",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
		}, []string{"op"}),
		overCapacity: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sidecar_redis_over_capacity_total",
			Help: "Messages a group send could not queue for a process because its queue was full (CHANNEL_LAYER_CAPACITY): lost events, as channels_redis loses them.",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sidecar_redis_undecodable_total",
			Help: "Messages received that could not be decrypted or decoded, dropped.",
		}),
	}
}

func (m *metrics) time(op string) func() {
	start := time.Now()
	return func() { m.seconds.WithLabelValues(op).Observe(time.Since(start).Seconds()) }
}

// Register adds the layer's series to reg.
func (l *Layer) Register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{l.metrics.seconds, l.metrics.overCapacity, l.metrics.undecodable} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

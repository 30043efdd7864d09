package consumer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the protocol's Prometheus series. Labels are routes, reasons
// and kinds from fixed lists: never a user, a group or a token.
type metrics struct {
	open          *prometheus.GaugeVec
	connects      *prometheus.CounterVec
	refusals      *prometheus.CounterVec
	framesIn      *prometheus.CounterVec
	framesOut     *prometheus.CounterVec
	bytesOut      *prometheus.CounterVec
	errorFrames   *prometheus.CounterVec
	saved         *prometheus.CounterVec
	drops         *prometheus.CounterVec
	closes        *prometheus.CounterVec
	rateLimited   prometheus.Counter
	events        *prometheus.CounterVec
	eventsDropped *prometheus.CounterVec
	updateSends   *prometheus.CounterVec
	eventLag      *prometheus.HistogramVec
	historyBytes  prometheus.Counter
	historyLoads  *prometheus.CounterVec
	inbox         *prometheus.CounterVec
	budgetUsed    prometheus.GaugeFunc
	budgetLimit   prometheus.Gauge
}

// newMetrics registers the series on reg (nil: kept unregistered, for
// tests).
func newMetrics(reg prometheus.Registerer, mem *budget) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &metrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sidecar_connections", Help: "WebSocket connections open, by route.",
		}, []string{"route"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_connects_total", Help: "WebSocket connections accepted, by route.",
		}, []string{"route"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_connect_refusals_total", Help: "Handshakes refused, by route and reason.",
		}, []string{"route", "reason"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_frames_received_total", Help: "Client frames received, by route and type.",
		}, []string{"route", "type"}),
		framesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_frames_sent_total", Help: "Frames written to clients, by route and type.",
		}, []string{"route", "type"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_sent_bytes_total", Help: "Bytes of frames written to clients, by route.",
		}, []string{"route"}),
		errorFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_error_frames_total", Help: "Error frames sent, by kind.",
		}, []string{"kind"}),
		saved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_messages_saved_total", Help: "Messages written to Django's database, by message_type.",
		}, []string{"type"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_connection_drops_total", Help: "Connections closed for falling behind, by reason (send_queue, memory_budget).",
		}, []string{"reason"}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_connection_closes_total", Help: "Connections closed by a limit, by reason (frame_too_big, invalid_utf8, message_timeout, timeout: no pong, rate_limit).",
		}, []string{"reason"}),
		rateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sidecar_rate_limited_frames_total", Help: "Client frames refused by the per-connection rate limit.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_group_events_total", Help: "Group events received for local connections, by route and type.",
		}, []string{"route", "type"}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_group_events_dropped_total", Help: "Group events dropped, by reason (queue_full: too many waiting for one group).",
		}, []string{"reason"}),
		eventLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sidecar_group_event_lag_seconds", Help: "Time from receiving a group event to its frames being queued, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route"}),
		historyBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sidecar_history_bytes_total", Help: "Bytes of message histories encoded (each shared by every frame that sends it).",
		}),
		historyLoads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_history_loads_total", Help: "Histories loaded, by outcome (ok: queried, cache: from the change feed's cache, cache_miss: the cache could not be exact, shared: a waiter served by another's load, error, busy).",
		}, []string{"outcome"}),
		updateSends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_conversation_update_sends_total", Help: "conversation_update group sends, by outcome (sent, failed, coalesced: covered by one still waiting for the same group and conversation).",
		}, []string{"outcome"}),
		inbox: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sidecar_inbox_updates_total", Help: "Conversation-list work: computations, and updates merged into a computation already due.",
		}, []string{"kind"}),
		budgetLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sidecar_memory_budget_limit_bytes", Help: "The process's memory budget for client-driven work (MEMORY_LIMIT share).",
		}),
	}
	m.budgetUsed = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "sidecar_memory_budget_used_bytes", Help: "Bytes of the memory budget in use: frames read or queued, histories.",
	}, func() float64 { return float64(mem.used.Load()) })
	m.budgetLimit.Set(float64(mem.limit))
	reg.MustRegister(m.open, m.connects, m.refusals, m.framesIn, m.framesOut, m.bytesOut, m.errorFrames,
		m.saved, m.drops, m.closes, m.rateLimited, m.events, m.eventsDropped, m.updateSends, m.eventLag, m.historyBytes,
		m.historyLoads, m.inbox, m.budgetUsed, m.budgetLimit)
	return m
}

func (m *metrics) drop(reason string)   { m.drops.WithLabelValues(reason).Inc() }
func (m *metrics) closed(reason string) { m.closes.WithLabelValues(reason).Inc() }
func (m *metrics) rateLimit()           { m.rateLimited.Inc() }

func (m *metrics) frameOut(route, typ string, n int64) {
	m.framesOut.WithLabelValues(route, typ).Inc()
	m.bytesOut.WithLabelValues(route).Add(float64(n))
}

func (m *metrics) eventHandled(route string, received time.Time) {
	m.eventLag.WithLabelValues(route).Observe(time.Since(received).Seconds())
}

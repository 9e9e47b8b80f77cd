package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the endpoint's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series caches the children of each label combination seen, so that a request does not
	// format its status code and hash its label values again: the combinations are few (plugin
	// names are only counted once authenticated, operations and codes are fixed sets).
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	plugin, op string
	code       int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatehouse", Subsystem: "scim", Name: "requests_total",
			Help: "SCIM requests by plugin (\"-\" when not authenticated), operation and HTTP status code.",
		}, []string{"plugin", "operation", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gatehouse", Subsystem: "scim", Name: "request_duration_seconds",
			Help:    "Time to answer SCIM requests, by plugin and operation.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"plugin", "operation"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) observe(plugin, op string, code int, d time.Duration) {
	key := seriesKey{plugin: plugin, op: op, code: code}
	v, ok := m.series.Load(key)
	if !ok {
		v, _ = m.series.LoadOrStore(key, &series{
			requests: m.requests.WithLabelValues(plugin, op, strconv.Itoa(code)),
			duration: m.duration.WithLabelValues(plugin, op),
		})
	}
	s := v.(*series)
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}

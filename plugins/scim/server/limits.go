package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
)

// failureLimiter counts failed authentications per source in fixed windows. A source that reaches
// the limit is refused (429) until its window ends; the token it sends is then not even checked,
// so guessing stays slow whatever the verifier costs.
type failureLimiter struct {
	clock  clockwork.Clock
	limit  int
	window time.Duration
	max    int

	mu      sync.Mutex
	sources map[string]*failureWindow
}

type failureWindow struct {
	start    time.Time
	failures int
}

func newFailureLimiter(clock clockwork.Clock, limit int, window time.Duration, max int) *failureLimiter {
	return &failureLimiter{clock: clock, limit: limit, window: window, max: max, sources: map[string]*failureWindow{}}
}

// blocked returns how long source must wait, 0 when it may try.
func (l *failureLimiter) blocked(source string) time.Duration {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.sources[source]
	if !ok {
		return 0
	}
	end := w.start.Add(l.window)
	if !now.Before(end) {
		delete(l.sources, source)
		return 0
	}
	if w.failures >= l.limit {
		return end.Sub(now)
	}
	return 0
}

// fail records a failed authentication from source.
func (l *failureLimiter) fail(source string) {
	now := l.clock.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.sources[source]
	if !ok || !now.Before(w.start.Add(l.window)) {
		if !ok && len(l.sources) >= l.max {
			l.prune(now)
		}
		if !ok && len(l.sources) >= l.max {
			// Still full of live windows (a wide scan): forget the oldest-looking entry rather
			// than grow without bound. Map order is arbitrary, which is good enough here.
			for k := range l.sources {
				delete(l.sources, k)
				break
			}
		}
		w = &failureWindow{start: now}
		l.sources[source] = w
	}
	w.failures++
}

func (l *failureLimiter) prune(now time.Time) {
	for k, w := range l.sources {
		if !now.Before(w.start.Add(l.window)) {
			delete(l.sources, k)
		}
	}
}

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

package process

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// webMethods are the "method" label values, as promhttp sanitizes them: the known methods,
// upper or lower case, in lower case; any other is "unknown" (the last entry).
var webMethods = [...]string{"get", "put", "head", "post", "delete", "connect", "options", "notify", "trace", "patch", "unknown"}

const unknownMethod = len(webMethods) - 1

// webMethodIndex is promhttp's method sanitizing, as an index into webMethods.
func webMethodIndex(m string) int {
	switch m {
	case "GET", "get":
		return 0
	case "PUT", "put":
		return 1
	case "HEAD", "head":
		return 2
	case "POST", "post":
		return 3
	case "DELETE", "delete":
		return 4
	case "CONNECT", "connect":
		return 5
	case "OPTIONS", "options":
		return 6
	case "NOTIFY", "notify":
		return 7
	case "TRACE", "trace":
		return 8
	case "PATCH", "patch":
		return 9
	}
	return unknownMethod
}

// The "code" label values, as promhttp sanitizes them: 100 to 599 as they are, no status
// written as 200, anything else "unknown" (the last slot).
const (
	minWebCode   = 100
	maxWebCode   = 599
	unknownCode  = maxWebCode - minWebCode + 1
	webCodeSlots = unknownCode + 1
)

// webCodeIndex is promhttp's code sanitizing, as a slot index and its label value.
func webCodeIndex(status int) int {
	if status == 0 {
		status = http.StatusOK
	}
	if status < minWebCode || status > maxWebCode {
		return unknownCode
	}
	return status - minWebCode
}

func webCodeLabel(slot int) string {
	if slot == unknownCode {
		return "unknown"
	}
	return strconv.Itoa(slot + minWebCode)
}

// webMetrics instruments the web listener: it records exactly the series promhttp's
// InstrumentHandlerInFlight(InstrumentHandlerDuration(InstrumentHandlerCounter)) chain
// recorded, in one wrapper, with the labelled children looked up once and kept (each request
// used to build two label maps and hash them into the vectors, and wrap the writer twice).
// Children are made on first use, as before, so that /metrics shows no series for a method or
// code never served.
type webMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge

	observers [len(webMethods)]atomic.Pointer[prometheus.Observer]
	counters  [len(webMethods)][webCodeSlots]atomic.Pointer[prometheus.Counter]
}

func (m *webMetrics) observer(method int) prometheus.Observer {
	if o := m.observers[method].Load(); o != nil {
		return *o
	}
	o := m.duration.WithLabelValues(webMethods[method])
	m.observers[method].Store(&o)
	return o
}

func (m *webMetrics) counter(method, code int) prometheus.Counter {
	if c := m.counters[method][code].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(webMethods[method], webCodeLabel(code))
	m.counters[method][code].Store(&c)
	return c
}

// newWebMetrics registers the web listener's metrics and returns its middleware.
func newWebMetrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	m := &webMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gatehouse", Subsystem: "web", Name: "requests_total",
			Help: "HTTP requests served by the web listener, by method and status code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "gatehouse", Subsystem: "web", Name: "request_duration_seconds",
			Help:    "Time to serve HTTP requests on the web listener.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "gatehouse", Subsystem: "web", Name: "requests_in_flight",
			Help: "HTTP requests being served by the web listener.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inFlight)
	return m.middleware
}

func (m *webMetrics) middleware(next http.Handler) http.Handler {
	// The promhttp chain itself serves a ResponseWriter of a shape other than net/http's HTTP/1
	// and HTTP/2 ones: it keeps any combination of the optional interfaces (see wrapWebWriter).
	chain := promhttp.InstrumentHandlerInFlight(m.inFlight,
		promhttp.InstrumentHandlerDuration(m.duration,
			promhttp.InstrumentHandlerCounter(m.requests, next)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ww, mw := wrapWebWriter(w)
		if ww == nil {
			chain.ServeHTTP(w, r)
			return
		}
		// As promhttp: the gauge comes down even on a panic, while a request that panics is
		// neither timed nor counted.
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		start := time.Now()
		next.ServeHTTP(ww, r)
		method := webMethodIndex(r.Method)
		m.counter(method, webCodeIndex(mw.status)).Inc()
		m.observer(method).Observe(time.Since(start).Seconds())
	})
}

// metricsWriter records the status code the way promhttp's delegator does: the last one passed
// to WriteHeader, with a Write, Flush or ReadFrom before any WriteHeader writing 200 first.
type metricsWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *metricsWriter) WriteHeader(code int) {
	w.status = code
	w.wroteHeader = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *metricsWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

func (w *metricsWriter) flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.ResponseWriter.(http.Flusher).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *metricsWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

//nolint:staticcheck // SA1019: http.CloseNotifier is deprecated, but a writer that has it keeps it.
func (w *metricsWriter) closeNotify() <-chan bool {
	return w.ResponseWriter.(http.CloseNotifier).CloseNotify()
}

// h1MetricsWriter has the optional interfaces of net/http's HTTP/1 response writer.
type h1MetricsWriter struct{ metricsWriter }

func (w *h1MetricsWriter) Flush()                   { w.flush() }
func (w *h1MetricsWriter) CloseNotify() <-chan bool { return w.closeNotify() }
func (w *h1MetricsWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.ResponseWriter.(http.Hijacker).Hijack()
}

func (w *h1MetricsWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.(io.ReaderFrom).ReadFrom(r)
}

// h2MetricsWriter has the optional interfaces of net/http's HTTP/2 response writer.
type h2MetricsWriter struct{ metricsWriter }

func (w *h2MetricsWriter) Flush()                   { w.flush() }
func (w *h2MetricsWriter) CloseNotify() <-chan bool { return w.closeNotify() }
func (w *h2MetricsWriter) Push(target string, opts *http.PushOptions) error {
	return w.ResponseWriter.(http.Pusher).Push(target, opts)
}

// The optional interfaces a ResponseWriter may have, as promhttp's delegator tells them apart.
const (
	hasCloseNotifier = 1 << iota
	hasFlusher
	hasHijacker
	hasReaderFrom
	hasPusher

	h1Shape = hasCloseNotifier | hasFlusher | hasHijacker | hasReaderFrom
	h2Shape = hasCloseNotifier | hasFlusher | hasPusher
)

// wrapWebWriter wraps w in one allocation when it has the optional interfaces of net/http's
// HTTP/1 or HTTP/2 writer, which the wrapper then has too; otherwise it returns nil and the
// caller uses promhttp's chain, which keeps any other combination.
func wrapWebWriter(w http.ResponseWriter) (http.ResponseWriter, *metricsWriter) {
	shape := 0
	//nolint:staticcheck // SA1019: see metricsWriter.closeNotify.
	if _, ok := w.(http.CloseNotifier); ok {
		shape |= hasCloseNotifier
	}
	if _, ok := w.(http.Flusher); ok {
		shape |= hasFlusher
	}
	if _, ok := w.(http.Hijacker); ok {
		shape |= hasHijacker
	}
	if _, ok := w.(io.ReaderFrom); ok {
		shape |= hasReaderFrom
	}
	if _, ok := w.(http.Pusher); ok {
		shape |= hasPusher
	}
	switch shape {
	case h1Shape:
		ww := &h1MetricsWriter{metricsWriter{ResponseWriter: w}}
		return ww, &ww.metricsWriter
	case h2Shape:
		ww := &h2MetricsWriter{metricsWriter{ResponseWriter: w}}
		return ww, &ww.metricsWriter
	}
	return nil, nil
}

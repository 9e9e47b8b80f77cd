package process

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// promhttpWebMetrics is the middleware webMetrics replaced, verbatim: the reference its
// /metrics output is held to.
func promhttpWebMetrics(reg prometheus.Registerer) func(http.Handler) http.Handler {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "gatehouse", Subsystem: "web", Name: "requests_total",
		Help: "HTTP requests served by the web listener, by method and status code.",
	}, []string{"method", "code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "gatehouse", Subsystem: "web", Name: "request_duration_seconds",
		Help:    "Time to serve HTTP requests on the web listener.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method"})
	inFlight := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "gatehouse", Subsystem: "web", Name: "requests_in_flight",
		Help: "HTTP requests being served by the web listener.",
	})
	reg.MustRegister(requests, duration, inFlight)
	return func(next http.Handler) http.Handler {
		return promhttp.InstrumentHandlerInFlight(inFlight,
			promhttp.InstrumentHandlerDuration(duration,
				promhttp.InstrumentHandlerCounter(requests, next)))
	}
}

// writerShape is the optional interfaces w has, as promhttp tells them apart.
func writerShape(w http.ResponseWriter) string {
	var s []string
	//nolint:staticcheck // SA1019: the shape includes the deprecated interface too.
	if _, ok := w.(http.CloseNotifier); ok {
		s = append(s, "CloseNotifier")
	}
	if _, ok := w.(http.Flusher); ok {
		s = append(s, "Flusher")
	}
	if _, ok := w.(http.Hijacker); ok {
		s = append(s, "Hijacker")
	}
	if _, ok := w.(io.ReaderFrom); ok {
		s = append(s, "ReaderFrom")
	}
	if _, ok := w.(http.Pusher); ok {
		s = append(s, "Pusher")
	}
	return strings.Join(s, ",")
}

// inFlight reads the gauge from what reg exposes (-1 when it cannot: it runs on server
// goroutines too, where a test may not stop).
func inFlight(t *testing.T, reg prometheus.Gatherer) float64 {
	mfs, err := reg.Gather()
	if !assert.NoError(t, err) {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "gatehouse_web_requests_in_flight" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Error("no in-flight gauge")
	return -1
}

// metricsTestHandler answers by path, the ways a handler can set (or not set) a status. It
// records, for every request, the shape of the writer it got next to the shape of the
// connection's own writer, and the in-flight gauge it saw.
func metricsTestHandler(t *testing.T, reg prometheus.Gatherer, shapes chan<- [2]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := w
		for {
			u, ok := raw.(interface{ Unwrap() http.ResponseWriter })
			if !ok {
				break
			}
			raw = u.Unwrap()
		}
		shapes <- [2]string{writerShape(w), writerShape(raw)}
		assert.Equal(t, 1.0, inFlight(t, reg)) // not require: this runs on the server's goroutine
		switch r.URL.Path {
		case "/ok":
			_, _ = io.WriteString(w, "ok")
		case "/nothing":
		case "/404":
			http.NotFound(w, r)
		case "/twice":
			w.WriteHeader(http.StatusCreated)
			w.WriteHeader(http.StatusAccepted) // a handler bug: promhttp counted the last one
		case "/flush":
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, "flushed")
		case "/readfrom":
			_, _ = io.Copy(w, strings.NewReader("copied"))
		case "/controller":
			assert.NoError(t, http.NewResponseController(w).Flush())
		case "/panic":
			panic("boom")
		case "/unavailable":
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
}

// withTestRecover turns a panic into a 500 outside the middleware, as lib/web does.
func withTestRecover(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

var metricsTestRequests = []struct{ method, path string }{
	{"GET", "/ok"}, {"GET", "/ok"}, {"get", "/ok"}, {"POST", "/nothing"}, {"PATCH", "/404"},
	{"PUT", "/twice"}, {"GET", "/flush"}, {"GET", "/readfrom"}, {"DELETE", "/controller"},
	{"GET", "/panic"}, {"FOO", "/unavailable"}, {"Get", "/ok"}, {"OPTIONS", "/nothing"},
}

// exposed is what reg exposes, with what time decides (durations: the sum and which bucket a
// request fell in) left out: names, help, types, every series' labels, counter and gauge
// values, histogram counts and bucket bounds.
func exposed(t *testing.T, reg prometheus.Gatherer) string {
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var lines []string
	for _, mf := range mfs {
		lines = append(lines, fmt.Sprintf("# %s %s %s", mf.GetName(), mf.GetType(), mf.GetHelp()))
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			series := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				lines = append(lines, fmt.Sprintf("%s %v", series, m.GetCounter().GetValue()))
			case dto.MetricType_GAUGE:
				lines = append(lines, fmt.Sprintf("%s %v", series, m.GetGauge().GetValue()))
			case dto.MetricType_HISTOGRAM:
				var bounds []string
				for _, b := range m.GetHistogram().GetBucket() {
					bounds = append(bounds, fmt.Sprint(b.GetUpperBound()))
				}
				lines = append(lines, fmt.Sprintf("%s count=%d buckets=%s", series, m.GetHistogram().GetSampleCount(), strings.Join(bounds, ",")))
			default:
				t.Fatalf("unexpected metric type %v", mf.GetType())
			}
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestWebMetricsSameSeries holds the hand-written middleware to the promhttp chain it replaced:
// the same requests, over HTTP/1, HTTP/2 (the writers it wraps itself) and through a recorder
// (which it hands to the chain), expose the same series; the handler sees a writer with the
// optional interfaces of the connection's own, and the in-flight gauge at 1.
func TestWebMetricsSameSeries(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"http1", "http2", "recorder"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			run := func(mw func(prometheus.Registerer) func(http.Handler) http.Handler) (string, [][2]string) {
				reg := prometheus.NewRegistry()
				shapes := make(chan [2]string, len(metricsTestRequests))
				h := withTestRecover(mw(reg)(metricsTestHandler(t, reg, shapes)))
				serve := func(method, path string) {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
				}
				if transport != "recorder" {
					srv := httptest.NewUnstartedServer(h)
					srv.EnableHTTP2 = transport == "http2"
					srv.StartTLS()
					defer srv.Close()
					client := srv.Client()
					serve = func(method, path string) {
						req, err := http.NewRequest(method, srv.URL+path, nil)
						require.NoError(t, err)
						resp, err := client.Do(req)
						require.NoError(t, err)
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						require.Equal(t, transport == "http2", resp.ProtoMajor == 2)
					}
				}
				for _, rq := range metricsTestRequests {
					serve(rq.method, rq.path)
				}
				close(shapes)
				var got [][2]string
				for s := range shapes {
					got = append(got, s)
				}
				require.Zero(t, inFlight(t, reg))
				return exposed(t, reg), got
			}
			want, _ := run(promhttpWebMetrics)
			got, shapes := run(newWebMetrics)
			require.Equal(t, want, got)
			require.Contains(t, got, `gatehouse_web_requests_total{code=202,method=put} 1`)
			require.Contains(t, got, `gatehouse_web_requests_total{code=200,method=get} 5`)
			require.Contains(t, got, `gatehouse_web_requests_total{code=503,method=unknown} 1`)
			require.NotContains(t, got, "code=500", "a panic is not counted")
			require.Len(t, shapes, len(metricsTestRequests))
			for _, s := range shapes {
				require.Equal(t, s[1], s[0], "the handler's writer keeps the connection writer's interfaces")
			}
		})
	}
}

// TestWrapWebWriterShapes: net/http's HTTP/1 and HTTP/2 writers get the one-allocation wrapper.
func TestWrapWebWriterShapes(t *testing.T) {
	t.Parallel()
	for _, http2 := range []bool{false, true} {
		var wrapped http.ResponseWriter
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			wrapped, _ = wrapWebWriter(w)
		}))
		srv.EnableHTTP2 = http2
		srv.StartTLS()
		resp, err := srv.Client().Get(srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		srv.Close()
		if http2 {
			require.IsType(t, &h2MetricsWriter{}, wrapped)
		} else {
			require.IsType(t, &h1MetricsWriter{}, wrapped)
		}
	}
	w, _ := wrapWebWriter(httptest.NewRecorder())
	require.Nil(t, w, "another shape goes through the promhttp chain")
}

// TestWebMetricsHijack: a hijacked HTTP/1 connection is still served through the wrapper.
func TestWebMetricsHijack(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(newWebMetrics(reg)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		_ = buf.Flush()
	})))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// BenchmarkWebMetrics is the middleware's cost per request around a handler that writes a
// small body, on net/http's HTTP/1 writer shape: the hand-written one and the promhttp chain.
func BenchmarkWebMetrics(b *testing.B) {
	for name, mw := range map[string]func(prometheus.Registerer) func(http.Handler) http.Handler{
		"handwritten": newWebMetrics, "promhttp": promhttpWebMetrics,
	} {
		b.Run(name, func(b *testing.B) {
			h := mw(prometheus.NewRegistry())(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte("ok"))
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			w := &h1ShapeWriter{header: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.status = 0
				h.ServeHTTP(w, r)
			}
			require.Equal(b, http.StatusOK, w.status)
		})
	}
}

// h1ShapeWriter is a do-nothing writer with the optional interfaces of net/http's HTTP/1 one.
type h1ShapeWriter struct {
	header http.Header
	status int
}

func (w *h1ShapeWriter) Header() http.Header         { return w.header }
func (w *h1ShapeWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *h1ShapeWriter) WriteHeader(code int)        { w.status = code }
func (w *h1ShapeWriter) Flush()                      {}
func (w *h1ShapeWriter) CloseNotify() <-chan bool    { return nil }
func (w *h1ShapeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, http.ErrNotSupported
}
func (w *h1ShapeWriter) ReadFrom(r io.Reader) (int64, error) { return io.Copy(io.Discard, r) }

// TestWebMetricsConcurrent: requests racing to make the same children all count, once each.
func TestWebMetricsConcurrent(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	h := newWebMetrics(reg)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
		}
	}))
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			method := []string{http.MethodGet, http.MethodPost}[i%2]
			for range each {
				h.ServeHTTP(&h1ShapeWriter{header: http.Header{}}, httptest.NewRequest(method, "/", nil))
			}
		})
	}
	wg.Wait()
	got := exposed(t, reg)
	require.Contains(t, got, fmt.Sprintf("gatehouse_web_requests_total{code=200,method=get} %d", workers/2*each))
	require.Contains(t, got, fmt.Sprintf("gatehouse_web_requests_total{code=201,method=post} %d", workers/2*each))
	require.Contains(t, got, fmt.Sprintf("gatehouse_web_request_duration_seconds{method=get} count=%d", workers/2*each))
	require.Contains(t, got, "gatehouse_web_requests_in_flight{} 0")
}

// Package observe serves the processor's HTTP endpoints (`fallback run
// --http-addr`):
//
//	/metrics  the processor's OTel metrics in Prometheus text
//	/healthz  200 while the process serves (alive)
//	/readyz   200 when Kafka and Redis answer and the group gave this
//	          instance partitions; 503 with the reason otherwise
//
// The OTel SDK (go.opentelemetry.io/otel/sdk/metric) and its Prometheus
// exporter (go.opentelemetry.io/otel/exporters/prometheus) are dependencies
// for this: the processor only speaks the OTel API, and something must
// aggregate what it records and serve it to a scraper. docs/observability.md
// lists the metrics.
package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// DefaultAddr is --http-addr's default (9464: the OTel Prometheus exporter's usual port).
const DefaultAddr = ":9464"

// NewMeterProvider is an SDK MeterProvider whose Prometheus exporter
// registers on its own registry, and the handler that serves that registry.
func NewMeterProvider() (*sdkmetric.MeterProvider, http.Handler, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	return mp, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// readyTimeout bounds one /readyz check (a Kafka and a Redis round trip).
const readyTimeout = 2 * time.Second

// Handler routes /metrics, /healthz and /readyz; ready says why the
// processor is not ready, or nil.
func Handler(metrics http.Handler, ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Server serves the endpoints until shut down.
type Server struct {
	srv  *http.Server
	Addr string // the address listened on (the port filled in for ":0")
	done chan error
}

// Start listens on addr and serves h in the background.
func Start(addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-addr (FALLBACK_HTTP_ADDR) %q: %w", addr, err)
	}
	s := &Server{srv: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}, Addr: ln.Addr().String(), done: make(chan error, 1)}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		if err != nil {
			log.Error("http server stopped", "err", err)
		}
		s.done <- err
	}()
	log.Info("http endpoints", "addr", s.Addr, "paths", "/metrics /healthz /readyz")
	return s, nil
}

// shutdownTimeout bounds the wait for in-flight scrapes at shutdown.
const shutdownTimeout = 5 * time.Second

// Shutdown stops the server, letting in-flight requests finish for a while.
func (s *Server) Shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return err
	}
	return <-s.done
}

// Package app wires the collector's components: store, gRPC server (ingest and
// query), REST gateway and UI. New validates and builds, Start listens, Stop stops
// in reverse order and waits.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/webui"
)

// Config of the collector. Zero values are not defaults: start from DefaultConfig.
type Config struct {
	// GRPCListen is the address for sensors (SensorService) and gRPC query clients.
	GRPCListen string
	// HTTPListen is the address of the REST API and dashboard.
	HTTPListen string
	// DataDir holds the durable flow log; empty means memory only.
	DataDir string
	// AuthToken, when set, is required as a bearer token by the API. Without it the
	// API must listen on a loopback address.
	AuthToken string
	// Retention is how long flows are kept after their last update.
	Retention time.Duration
	// Version is reported by /api/v1/health and to sensors.
	Version string
}

// DefaultConfig is the documented default configuration.
func DefaultConfig() Config {
	return Config{
		GRPCListen: "127.0.0.1:9090",
		HTTPListen: "127.0.0.1:8080",
		DataDir:    "./netwatch-data",
		Retention:  60 * time.Minute,
		Version:    "dev",
	}
}

// Check validates c; errors name the field.
func (c Config) Check() error {
	for _, f := range []struct{ name, addr string }{{"grpc-listen", c.GRPCListen}, {"http-listen", c.HTTPListen}} {
		host, port, err := net.SplitHostPort(f.addr)
		if err != nil || port == "" {
			return fmt.Errorf("%s: %q is not host:port", f.name, f.addr)
		}
		if f.name == "http-listen" && c.AuthToken == "" && !isLoopback(host) {
			return fmt.Errorf("%s: %q is not a loopback address; set an auth token (--auth-token or NETWATCH_AUTH_TOKEN) to serve the API beyond this host", f.name, f.addr)
		}
	}
	if c.Retention < time.Minute {
		return fmt.Errorf("retention: %v is below the minimum of 1m", c.Retention)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Collector is a running (or ready to run) collector.
type Collector struct {
	cfg   Config
	log   *slog.Logger
	store *store.Store
	query *query.Service
	grpc  *grpc.Server
	http  *http.Server

	grpcLis, httpLis net.Listener
	wg               sync.WaitGroup
	cancel           context.CancelFunc
}

// New validates cfg and builds the components; it starts nothing.
func New(cfg Config, log *slog.Logger) (*Collector, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	st := store.New(store.Config{Retention: cfg.Retention})
	c := &Collector{cfg: cfg, log: log, store: st, query: query.New(st, cfg.Version, time.Now)}
	c.grpc = grpc.NewServer()
	netwatchv1.RegisterQueryServiceServer(c.grpc, c.query)
	return c, nil
}

// Start listens and serves. The bound addresses are available from GRPCAddr and HTTPAddr.
func (c *Collector) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	h, err := api.NewHandler(ctx, c.query, api.Options{
		Token: c.cfg.AuthToken, Log: c.log, UI: http.FileServerFS(webui.FS()),
	})
	if err != nil {
		cancel()
		return err
	}
	c.http = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	if c.grpcLis, err = net.Listen("tcp", c.cfg.GRPCListen); err != nil {
		cancel()
		return fmt.Errorf("grpc-listen %s: %w", c.cfg.GRPCListen, err)
	}
	if c.httpLis, err = net.Listen("tcp", c.cfg.HTTPListen); err != nil {
		cancel()
		c.grpcLis.Close()
		return fmt.Errorf("http-listen %s: %w", c.cfg.HTTPListen, err)
	}
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := c.grpc.Serve(c.grpcLis); err != nil {
			c.log.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer c.wg.Done()
		if err := c.http.Serve(c.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("http server stopped", "err", err)
		}
	}()
	c.log.Info("collector started", "grpc", c.grpcLis.Addr().String(), "http", "http://"+c.httpLis.Addr().String()+"/", "version", c.cfg.Version)
	return nil
}

// GRPCAddr is the bound gRPC address.
func (c *Collector) GRPCAddr() string { return c.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (c *Collector) HTTPAddr() string { return c.httpLis.Addr().String() }

// Stop stops serving (HTTP first, then gRPC) and waits, at most until ctx is done.
func (c *Collector) Stop(ctx context.Context) error {
	err := c.http.Shutdown(ctx)
	stopped := make(chan struct{})
	go func() { c.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		c.grpc.Stop()
	}
	c.cancel()
	c.wg.Wait()
	return err
}

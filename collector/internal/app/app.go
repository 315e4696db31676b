// Package app wires the collector's components: store, gRPC server (ingest and
// query), REST gateway and UI. New validates and builds, Start listens, Stop stops
// in reverse order and waits.
package app

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/reflection"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/connlimit"
	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/geoip"
	"netwatch.dev/collector/internal/ingest"
	"netwatch.dev/collector/internal/live"
	"netwatch.dev/collector/internal/names"
	"netwatch.dev/collector/internal/peerlog"
	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/collector/internal/telemetry"
	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/procstat"
	"netwatch.dev/common/tlsfiles"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/webui"
)

// Config of the collector. Zero values are not defaults: start from DefaultConfig.
type Config struct {
	// GRPCListen is the address for sensors (SensorService) and gRPC query clients.
	GRPCListen string
	// HTTPListen is the address of the REST API and dashboard.
	HTTPListen string
	// AuthToken, when set, is required as a bearer token by the API and /metrics.
	// Without it the API must listen on a loopback address, unless
	// AllowUnauthenticated is set.
	AuthToken string
	// AllowUnauthenticated lets the API listen beyond loopback without a token (a
	// warning is logged), and the gRPC query service answer clients beyond loopback.
	AllowUnauthenticated bool
	// RateLimit is API requests per minute per client IP (Remote: seed 100; Local,
	// loopback clients: seed 1000). Zero: no limit.
	RateLimit api.RateLimit
	// CORSOrigins may call the API from their pages ("https://host:port"); empty:
	// same-origin only.
	CORSOrigins []string
	// Store is the flow store: Store.Retention (how long flows are kept after their
	// last update) and Store.MaxFlows (beyond it the oldest-idle flows are evicted,
	// and counted). Store.Retention is the collector's one retention: New gives it
	// to the ingest service too.
	Store store.Config
	// Ingest is the sensor link and its durable log: Ingest.DataDir (the only owner
	// of the data directory, which it also locks; empty: memory only),
	// Ingest.SnapshotEvery (the log is snapshotted, and the segments the snapshot
	// covers removed, at least this often while batches arrive), Ingest.MaxSensors
	// and Ingest.HelloTimeout (a sensor stream that has not said hello this long
	// after it opened is closed; the collector allows 1 s to 5 min). New sets
	// Ingest.Retention from Store.Retention, Ingest.Version from Version and
	// Ingest.Tokens from SensorTokenFile, and Ingest.DNS to the DNS name table:
	// what this Config holds in those four is not used.
	Ingest ingest.Config
	// CleanupInterval is how often flows past retention are removed (memory is freed
	// then; queries never show them). Default 1 s; 1 s to 1 min.
	CleanupInterval time.Duration
	// Version is reported by /api/v1/health and to sensors.
	Version string
	// TLSCert and TLSKey (PEM files) turn on TLS for the gRPC listener. Without them
	// GRPCListen must be a loopback address unless Insecure is set.
	TLSCert, TLSKey string
	// TLSClientCA (PEM file) requires sensors and gRPC clients to present a
	// certificate signed by it (mTLS). Needs TLSCert.
	TLSClientCA string
	// Insecure allows plaintext gRPC on a non-loopback address (a warning is logged).
	Insecure bool
	// SensorTokenFile holds lines "sensor-id token"; when set every sensor must
	// present its token. Empty: no token required.
	SensorTokenFile string
	// MaxMessageBytes caps one gRPC message. Default 16 MiB.
	MaxMessageBytes int
	// Live is the WebSocket push (GET /api/v1/ws); its Token is AuthToken.
	Live live.Config
	// HTTPConns and GRPCConns cap the connections each listener keeps open at once
	// per client address (an IPv6 client by its /64); beyond it a new connection is
	// closed at once (and logged, rate-limited). Defaults: 64 per remote address,
	// 512 per loopback address (a reverse proxy on this host carries many clients).
	HTTPConns, GRPCConns connlimit.Limits
	// GeoIP are the MaxMind-format databases that give hosts their autonomous
	// system and country (files; empty: not used). New loads them (a missing or bad
	// file is an error naming the field); while serving they are reloaded when
	// their file changes (polled every 5 s) and on ReloadGeoIP (SIGHUP), a bad new
	// file keeping the database in use.
	GeoIP GeoIPFiles
	// DNSNamesMax caps the addresses of the DNS name table (the names captured DNS
	// responses gave, about names.BytesPerEntry bytes each); its entries age out
	// past Store.Retention. 0: no table, the observations sensors send are ignored.
	// Default 1,000,000; at most 100,000,000.
	DNSNamesMax int
}

// GeoIPFiles are the GeoIP database files.
type GeoIPFiles struct {
	// ASNDB is a GeoLite2-ASN layout database (autonomous_system_number,
	// autonomous_system_organization).
	ASNDB string
	// CountryDB is a GeoLite2-Country or -City layout database (country.iso_code,
	// else registered_country.iso_code).
	CountryDB string
}

// maxDNSNames bounds DNSNamesMax (some 28 GB of names).
const maxDNSNames = 100_000_000

// defaultConns are the default per-address connection caps of both listeners.
var defaultConns = connlimit.Limits{PerIP: 64, Loopback: 512}

// DefaultConfig is the documented default configuration.
func DefaultConfig() Config {
	return Config{
		GRPCListen:      "127.0.0.1:9090",
		HTTPListen:      "127.0.0.1:8080",
		Store:           store.DefaultConfig(),
		Ingest:          ingest.DefaultConfig(),
		CleanupInterval: time.Second,
		Version:         "dev",
		MaxMessageBytes: 16 << 20,
		Live:            live.DefaultConfig(),
		RateLimit:       api.RateLimit{Remote: 100, Local: 1000},
		HTTPConns:       defaultConns,
		GRPCConns:       defaultConns,
		DNSNamesMax:     names.DefaultMaxEntries,
	}
}

// Check validates c; errors name the field (a *flagconfig.FieldError; the
// command maps fields to its flags).
func (c Config) Check() error {
	if c.CleanupInterval < time.Second || c.CleanupInterval > time.Minute {
		return flagconfig.Fieldf("CleanupInterval", "%v is outside [1s, 1m]", c.CleanupInterval)
	}
	for _, f := range []struct{ field, addr string }{{"GRPCListen", c.GRPCListen}, {"HTTPListen", c.HTTPListen}} {
		if err := flagconfig.CheckListen(f.addr); err != nil {
			return &flagconfig.FieldError{Field: f.field, Err: err}
		}
		if f.field == "HTTPListen" && c.AuthToken == "" && !c.AllowUnauthenticated && !flagconfig.Loopback(f.addr) {
			return flagconfig.Fieldf(f.field, "%q is not a loopback address; set an API token (--api-token, --api-token-file or NETWATCH_AUTH_TOKEN) to serve the API beyond this host, or --allow-unauthenticated", f.addr)
		}
		if f.field == "GRPCListen" && c.TLSCert == "" && !c.Insecure && !flagconfig.Loopback(f.addr) {
			return flagconfig.Fieldf(f.field, "%q is not a loopback address; set --tls-cert/--tls-key (or --insecure to allow plaintext)", f.addr)
		}
	}
	if err := tlsfiles.CheckPair("TLSCert", c.TLSCert, "TLSKey", c.TLSKey); err != nil {
		return err
	}
	switch {
	case c.TLSClientCA != "" && c.TLSCert == "":
		return flagconfig.Fieldf("TLSClientCA", "needs --tls-cert and --tls-key")
	case c.MaxMessageBytes < 1<<20:
		return flagconfig.Fieldf("MaxMessageBytes", "%d is below the minimum of 1 MiB", c.MaxMessageBytes)
	case c.RateLimit.Remote < 0:
		return flagconfig.Fieldf("RateLimit.Remote", "%d per minute: must not be negative (0 turns the limit off)", c.RateLimit.Remote)
	case c.RateLimit.Local < 0:
		return flagconfig.Fieldf("RateLimit.Local", "%d per minute: must not be negative (0 turns the limit off)", c.RateLimit.Local)
	case c.DNSNamesMax != 0 && (c.DNSNamesMax < 16 || c.DNSNamesMax > maxDNSNames):
		return flagconfig.Fieldf("DNSNamesMax", "%d is outside [16, %d] (0 turns the DNS name table off)", c.DNSNamesMax, maxDNSNames)
	case c.Ingest.HelloTimeout < time.Second || c.Ingest.HelloTimeout > 5*time.Minute:
		// The collector's bounds; the ingest service only needs it positive.
		return flagconfig.Fieldf("Ingest.HelloTimeout", "%v is outside [1s, 5m]", c.Ingest.HelloTimeout)
	}
	if err := flagconfig.Under("Store", c.Store.Check()); err != nil {
		return err
	}
	if err := flagconfig.Under("Ingest", c.ingestConfig(nil).Check()); err != nil {
		return err
	}
	if err := flagconfig.Under("HTTPConns", c.HTTPConns.Check()); err != nil {
		return err
	}
	if err := flagconfig.Under("GRPCConns", c.GRPCConns.Check()); err != nil {
		return err
	}
	for _, o := range c.CORSOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return flagconfig.Fieldf("CORSOrigins", "%q is not an origin (scheme://host[:port])", o)
		}
	}
	return flagconfig.Under("Live", c.Live.Check())
}

// ingestConfig is Ingest with what the collector sets in it: the store's
// retention, the collector's version and the sensors' tokens.
func (c Config) ingestConfig(tokens map[string]string) ingest.Config {
	ic := c.Ingest
	ic.Retention, ic.Version, ic.Tokens = c.Store.Retention, c.Version, tokens
	return ic
}

// Collector is a running (or ready to run) collector.
type Collector struct {
	cfg    Config
	log    *slog.Logger
	store  *store.Store
	query  *query.Service
	ingest *ingest.Service
	grpc   *grpc.Server
	http   *http.Server
	live   *live.Hub
	// names, asnDB and countryDB are what enrich names addresses with (each may be
	// nil: not configured).
	names            *names.Table
	asnDB, countryDB *geoip.DB
	enrich           *enrich.Tables

	latency *telemetry.Latency
	token   *api.Token   // the API token: REST, gRPC queries, live push
	limiter *api.Limiter // per-client rate limit of REST and gRPC queries
	guard   *queryGuard
	// sensorTokens are those of SensorTokenFile in force (reloads compare with them).
	sensorTokens map[string]string

	grpcLis, httpLis net.Listener
	listening        chan struct{} // closed once grpcLis and httpLis are bound
	wg               sync.WaitGroup
	cancel           context.CancelFunc

	// grpcConns and httpConns are the listeners' connection caps (set by Start).
	grpcConns, httpConns atomic.Pointer[connlimit.Listener]
	refusals             *peerlog.Log // refused connections, rate-limited per peer
}

// New validates cfg and builds the components; it starts nothing.
func New(cfg Config, log *slog.Logger) (*Collector, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	st := store.New(cfg.Store)
	c := &Collector{cfg: cfg, log: log, store: st, query: query.New(st, cfg.Version, time.Now),
		token: api.NewToken(cfg.AuthToken), limiter: api.NewLimiter(cfg.RateLimit, time.Now),
		refusals: peerlog.New(log, 30*time.Second, time.Now), listening: make(chan struct{})}
	c.guard = &queryGuard{token: c.token, limiter: c.limiter, allowUnauthenticated: cfg.AllowUnauthenticated}
	c.query.CacheTopTalkers(time.Second)
	if cfg.SensorTokenFile != "" {
		toks, err := readTokens(cfg.SensorTokenFile)
		if err != nil {
			return nil, err
		}
		c.sensorTokens = toks
	}
	if err := c.openEnrichment(); err != nil {
		return nil, err
	}
	ic := cfg.ingestConfig(c.sensorTokens)
	if c.names != nil {
		ic.DNS = c.names.Observe
	}
	in, err := ingest.New(ic, st, log, time.Now)
	if err != nil {
		return nil, flagconfig.Under("Ingest", err)
	}
	c.ingest = in
	c.query.SetSensors(in)
	c.query.SetProblems(func() []query.Problem {
		var out []query.Problem
		for _, p := range in.Problems() {
			out = append(out, query.Problem(p))
		}
		return out
	})
	if c.live, err = newLive(c); err != nil {
		return nil, err
	}
	opts := ingest.ServerOptions(cfg.MaxMessageBytes)
	if cfg.TLSCert != "" {
		tc, err := serverTLS(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(handshakeLogged{credentials.NewTLS(tc), newHandshakeLog(log, 30*time.Second, time.Now)}))
	} else if cfg.Insecure {
		if !flagconfig.Loopback(cfg.GRPCListen) {
			log.Warn("insecure: sensors and gRPC clients talk to this collector in plaintext", "grpc-listen", cfg.GRPCListen)
		}
	}
	if cfg.AuthToken == "" && !flagconfig.Loopback(cfg.HTTPListen) {
		log.Warn("allow-unauthenticated: the API and /metrics answer anyone who can reach them", "http-listen", cfg.HTTPListen)
	}
	if cfg.AuthToken == "" && cfg.AllowUnauthenticated && !flagconfig.Loopback(cfg.GRPCListen) {
		log.Warn("allow-unauthenticated: the gRPC query service answers anyone who can reach it", "grpc-listen", cfg.GRPCListen)
	}
	c.latency = telemetry.NewLatency(append(api.RESTEndpoints(), grpcEndpoints()...)...)
	opts = append(opts, grpc.ChainUnaryInterceptor(c.guard.unary, observeQueries(c.latency)), grpc.ChainStreamInterceptor(c.guard.stream))
	c.grpc = grpc.NewServer(opts...)
	netwatchv1.RegisterQueryServiceServer(c.grpc, c.query)
	netwatchv1.RegisterSensorServiceServer(c.grpc, c.ingest)
	// grpcurl and other tools list and describe the services; reflection follows the
	// query service's rules (queryGuard).
	reflection.Register(c.grpc)
	return c, nil
}

// openEnrichment loads the GeoIP databases and makes the DNS name table, and gives
// them to the query service.
func (c *Collector) openEnrichment() error {
	var err error
	if f := c.cfg.GeoIP.ASNDB; f != "" {
		if c.asnDB, err = geoip.Open(geoip.ASN, f, c.log); err != nil {
			return &flagconfig.FieldError{Field: "GeoIP.ASNDB", Err: err}
		}
		c.log.Info("geoip ASN database loaded", "file", f, "type", c.asnDB.Type())
	}
	if f := c.cfg.GeoIP.CountryDB; f != "" {
		if c.countryDB, err = geoip.Open(geoip.Country, f, c.log); err != nil {
			return &flagconfig.FieldError{Field: "GeoIP.CountryDB", Err: err}
		}
		c.log.Info("geoip country database loaded", "file", f, "type", c.countryDB.Type())
	}
	if c.cfg.DNSNamesMax > 0 {
		c.names = names.New(names.Config{MaxEntries: c.cfg.DNSNamesMax, Retention: c.cfg.Store.Retention}, time.Now)
	}
	c.enrich = &enrich.Tables{DNS: c.names, ASN: c.asnDB, Country: c.countryDB}
	c.query.SetEnricher(c.enrich)
	return nil
}

// ReloadGeoIP loads the GeoIP database files that changed since they were loaded
// (SIGHUP; they are also polled). It returns the databases reloaded, those
// unchanged and the errors, each naming its database; a database that fails to
// load stays as it was.
func (c *Collector) ReloadGeoIP() (reloaded, unchanged []string, errs []error) {
	for _, d := range []struct {
		name string
		db   *geoip.DB
	}{{"geoip asn database", c.asnDB}, {"geoip country database", c.countryDB}} {
		if d.db == nil {
			continue
		}
		switch changed, err := d.db.Reload(); {
		case err != nil:
			errs = append(errs, err)
		case changed:
			reloaded = append(reloaded, d.name)
		default:
			unchanged = append(unchanged, d.name)
		}
	}
	return reloaded, unchanged, errs
}

// SetAPIToken replaces the API token of the REST API, the gRPC query service and
// the live push while they serve. A token the configuration needs (a non-loopback
// HTTPListen) cannot be removed.
func (c *Collector) SetAPIToken(tok string) error {
	cfg := c.cfg
	cfg.AuthToken = tok
	if err := cfg.Check(); err != nil {
		return err
	}
	c.token.Set(tok)
	return nil
}

// ReloadSensorTokens reads the sensors' token file path ("": no tokens required)
// and puts it in force for the streams opened from now on. changed reports whether
// the tokens differ from those in force. Not safe for concurrent use.
func (c *Collector) ReloadSensorTokens(path string) (changed bool, err error) {
	var toks map[string]string
	if path != "" {
		if toks, err = readTokens(path); err != nil {
			return false, err
		}
	}
	if maps.Equal(toks, c.sensorTokens) {
		return false, nil
	}
	if err := c.ingest.SetTokens(toks); err != nil {
		return false, err
	}
	c.sensorTokens = toks
	return true, nil
}

// serverTLS loads the gRPC listener's certificate and, for mTLS, the client CA.
func serverTLS(cfg Config) (*tls.Config, error) {
	cert, err := tlsfiles.KeyPair("TLSCert", cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.TLSClientCA != "" {
		pool, err := tlsfiles.CertPool("TLSClientCA", cfg.TLSClientCA)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// readTokens reads "sensor-id token" lines; blank lines and # comments are skipped.
func readTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &flagconfig.FieldError{Field: "SensorTokenFile", Err: err}
	}
	defer f.Close()
	toks := make(map[string]string)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, flagconfig.Fieldf("SensorTokenFile", "%s:%d: want \"sensor-id token\"", path, n)
		}
		toks[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, &flagconfig.FieldError{Field: "SensorTokenFile", Err: err}
	}
	if len(toks) == 0 {
		return nil, flagconfig.Fieldf("SensorTokenFile", "%s holds no token", path)
	}
	return toks, nil
}

// Preflight checks, changing nothing, what Start needs beyond what New built: that
// the data directory can be written (or created). Listen addresses were parsed by
// Check; they are not bound, as the collector being reconfigured may hold them.
func (c *Collector) Preflight() error {
	return flagconfig.Under("Ingest", c.ingest.Preflight())
}

// Start listens and serves. The bound addresses are available from GRPCAddr and HTTPAddr.
func (c *Collector) Start() error { return c.StartContext(context.Background()) }

// StartContext is Start; cancelling start interrupts the replay of the durable log
// (a stop asked for while starting): it then returns start's error and holds nothing.
//
// The listeners are bound and serve before the replay: /healthz answers, /readyz
// is 503 and the health says "replaying the log: N %" until the replay has ended,
// queries answer from what is loaded so far, and sensor streams are refused
// (Unavailable) until then. StartContext returns once the replay has ended.
func (c *Collector) StartContext(start context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	var h *api.Handler
	metrics := telemetry.Handler(telemetry.Sources{
		Store: c.store, Latency: c.latency, Sensors: c.ingest.Sensors, RSS: procstat.RSS,
		Counters: []telemetry.Counter{{
			Name: "netwatch_collector_http_rate_limited_total", Help: "API requests refused with 429 by the per-client rate limit.",
			Value: func() uint64 { return h.RateLimited() },
		}, {
			Name: "netwatch_collector_grpc_rate_limited_total", Help: "gRPC query calls refused with RESOURCE_EXHAUSTED by the per-client rate limit (shared with the REST API).",
			Value: c.guard.limited.Load,
		}, {
			Name: "netwatch_collector_http_connections_refused_total", Help: "HTTP connections closed at accept: their client address had its cap of open connections.",
			Value: func() uint64 { return refused(&c.httpConns) },
		}, {
			Name: "netwatch_collector_grpc_connections_refused_total", Help: "gRPC connections closed at accept: their client address had its cap of open connections.",
			Value: func() uint64 { return refused(&c.grpcConns) },
		}, {
			Name: "netwatch_collector_batches_rejected_total", Help: "Sensor batches refused as invalid (INVALID_ARGUMENT; not logged, not applied), all sensors.",
			Value: c.ingest.RejectedBatches,
		}, {
			Name: "netwatch_collector_dns_observations_invalid_total", Help: "DNS observations of applied batches dropped as invalid (bad name, address or time), all sensors.",
			Value: c.ingest.DNSObservationsInvalid,
		}, {
			Name: "netwatch_collector_replay_batches_skipped_total", Help: "Batch records of the durable log skipped at start because they fail validation (written by an older collector).",
			Value: c.ingest.ReplaySkipped,
		}, {
			Name: "netwatch_collector_dns_observations_total", Help: "DNS observations (a name and an address from a captured response) received from sensors.",
			Value: func() uint64 { return c.names.Stats().Observations },
		}, {
			Name: "netwatch_collector_dns_observations_ignored_total", Help: "DNS observations not kept: no usable name or address, or captured longer ago than the retention.",
			Value: func() uint64 { return c.names.Stats().Ignored },
		}, {
			Name: "netwatch_collector_dns_names_evicted_total", Help: "Addresses dropped from the DNS name table because it held --dns-names-max (the least recently observed).",
			Value: func() uint64 { return c.names.Stats().Evicted },
		}, {
			Name: "netwatch_collector_dns_names_expired_total", Help: "Addresses dropped from the DNS name table past the retention.",
			Value: func() uint64 { return c.names.Stats().Expired },
		}, {
			Name: "netwatch_collector_geoip_reloads_total", Help: "GeoIP databases (ASN and country) replaced by a changed file.",
			Value: func() uint64 { return c.asnDB.Reloads() + c.countryDB.Reloads() },
		}, {
			Name: "netwatch_collector_geoip_reload_errors_total", Help: "Changed GeoIP database files that could not be loaded (the database in use stayed).",
			Value: func() uint64 { return c.asnDB.Errors() + c.countryDB.Errors() },
		}, {
			Name: "netwatch_collector_log_write_errors_total", Help: "Failed writes (and retries) of the durable log; while they fail nothing is acknowledged.",
			Value: c.ingest.LogWriteErrors,
		}},
		Gauges: []telemetry.Counter{{
			Name: "netwatch_collector_dns_names", Help: "Addresses held by the DNS name table.",
			Value: func() uint64 { return c.names.Stats().Entries },
		}, {
			Name: "netwatch_collector_dns_names_max", Help: "Addresses the DNS name table holds at most (--dns-names-max; 0: off).",
			Value: func() uint64 { return uint64(c.cfg.DNSNamesMax) },
		}, {
			Name: "netwatch_collector_log_write_failing", Help: "1 while the durable log cannot write (full disk, I/O error): batches are not acknowledged.",
			Value: func() uint64 { return b2u(c.ingest.LogWriteFailing()) },
		}, {
			Name: "netwatch_collector_log_damaged_files", Help: "Damaged durable log files in <data dir>/corrupt/ not yet acknowledged (removed) by an operator.",
			Value: func() uint64 { return c.ingest.LogLoss().DamagedFiles },
		}, {
			Name: "netwatch_collector_log_lost_records", Help: "Acknowledged records lost to damage of the durable log (at least this many), until acknowledged.",
			Value: func() uint64 { return c.ingest.LogLoss().Records },
		}, {
			Name: "netwatch_collector_log_lost_bytes", Help: "Bytes of the durable log lost to damage, until acknowledged.",
			Value: func() uint64 { return c.ingest.LogLoss().Bytes },
		}, {
			Name: "netwatch_collector_log_missing_segments", Help: "Durable log segments found missing (their batches are lost), until acknowledged.",
			Value: func() uint64 { return c.ingest.LogLoss().MissingSegments },
		}},
	})
	h, err := api.NewHandler(ctx, c.query, api.Options{
		Auth: c.token, Log: c.log, UI: webui.Handler(),
		Limiter: c.limiter, CORSOrigins: c.cfg.CORSOrigins, Metrics: metrics, Latency: c.latency,
		Ready: c.ingest.Ready,
	})
	if err != nil {
		cancel()
		return err
	}
	c.http = newHTTPServer(c.withLive(h))
	// The data directory first: a run that cannot use it fails before it listens.
	if err := c.ingest.Open(); err != nil {
		cancel()
		return flagconfig.Under("Ingest", err)
	}
	if c.grpcLis, err = net.Listen("tcp", c.cfg.GRPCListen); err != nil {
		cancel()
		c.ingest.Stop()
		return fmt.Errorf("grpc-listen %s: %w", c.cfg.GRPCListen, err)
	}
	c.grpcLis = c.limitConns(&c.grpcConns, c.grpcLis, "grpc", c.cfg.GRPCConns)
	if c.httpLis, err = net.Listen("tcp", c.cfg.HTTPListen); err != nil {
		cancel()
		c.grpcLis.Close()
		c.ingest.Stop()
		return fmt.Errorf("http-listen %s: %w", c.cfg.HTTPListen, err)
	}
	c.httpLis = c.limitConns(&c.httpConns, c.httpLis, "http", c.cfg.HTTPConns)
	close(c.listening)
	c.live.Start()
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		if err := c.grpc.Serve(c.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			c.log.Error("grpc server stopped", "err", err)
		}
	}()
	go func() {
		defer c.wg.Done()
		if err := c.http.Serve(c.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Error("http server stopped", "err", err)
		}
	}()
	c.log.Info("collector listening; replaying the durable log", "grpc", c.grpcLis.Addr().String(), "http", "http://"+c.httpLis.Addr().String()+"/")
	if err := c.ingest.StartContext(start); err != nil {
		c.live.Stop()
		c.http.Close()
		c.grpc.Stop()
		cancel()
		c.wg.Wait()
		return flagconfig.Under("Ingest", err)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.housekeeping(ctx)
	}()
	for _, db := range []*geoip.DB{c.asnDB, c.countryDB} {
		if db != nil {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				db.Run(ctx, geoip.DefaultPollInterval)
			}()
		}
	}
	c.log.Info("collector started", "grpc", c.grpcLis.Addr().String(), "http", "http://"+c.httpLis.Addr().String()+"/", "version", c.cfg.Version)
	return nil
}

// limitConns caps l's connections per client address (limits), logging the
// refusals; the flags named are those of the listener (name "http" or "grpc").
func (c *Collector) limitConns(to *atomic.Pointer[connlimit.Listener], l net.Listener, name string, limits connlimit.Limits) net.Listener {
	remote := fmt.Sprintf("over the cap of %d open connections per address (--%s-max-conns-per-ip)", limits.PerIP, name)
	loopback := fmt.Sprintf("over the cap of %d open connections per loopback address (--%s-max-conns-loopback)", limits.Loopback, name)
	msg := map[string]string{"http": "refused HTTP connection", "grpc": "refused gRPC connection"}[name]
	cl := connlimit.Wrap(l, limits, func(r connlimit.Refusal) {
		reason := remote
		if r.Loopback {
			reason = loopback
		}
		c.refusals.Refused(slog.LevelWarn, r.Remote.String(), msg, reason)
	})
	to.Store(cl)
	return cl
}

func refused(l *atomic.Pointer[connlimit.Listener]) uint64 {
	if cl := l.Load(); cl != nil {
		return cl.Refused()
	}
	return 0
}

// Listening is closed once StartContext has bound the listeners (GRPCAddr and
// HTTPAddr are valid from then on), before the replay of the durable log.
func (c *Collector) Listening() <-chan struct{} { return c.listening }

// newHTTPServer sets the timeouts that keep slow clients (slowloris) from holding
// connections: headers within 10 s, a request within 30 s, a response within 60 s
// (a CSV download extends its own deadline chunk by chunk), idle keep-alives 2 min.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h, MaxHeaderBytes: 64 << 10,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 2 * time.Minute,
	}
}

// grpcEndpoints are the latency series pre-created for the gRPC query methods.
func grpcEndpoints() []telemetry.Endpoint {
	var out []telemetry.Endpoint
	for _, m := range netwatchv1.QueryService_ServiceDesc.Methods {
		out = append(out, telemetry.Endpoint{API: "grpc", Name: m.MethodName})
	}
	return out
}

// observeQueries records the latency of the gRPC query methods (not ingest).
func observeQueries(l *telemetry.Latency) grpc.UnaryServerInterceptor {
	prefix := "/" + netwatchv1.QueryService_ServiceDesc.ServiceName + "/"
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		name, ok := strings.CutPrefix(info.FullMethod, prefix)
		if !ok {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		l.Observe(telemetry.Endpoint{API: "grpc", Name: name}, time.Since(start))
		return resp, err
	}
}

// housekeeping records a metrics point every second (the history's resolution) and
// drops flows past retention every CleanupInterval.
func (c *Collector) housekeeping(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastCleanup time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			c.query.SampleMetrics(now)
			if now.Sub(lastCleanup) < c.cfg.CleanupInterval {
				continue
			}
			lastCleanup = now
			if n := c.store.Expire(now); n > 0 {
				c.log.Debug("flows expired", "count", n)
			}
			c.names.Expire(now)
		}
	}
}

// GRPCAddr is the bound gRPC address.
func (c *Collector) GRPCAddr() string { return c.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (c *Collector) HTTPAddr() string { return c.httpLis.Addr().String() }

// Stop stops serving (HTTP first, then gRPC) and waits, at most until ctx is done.
func (c *Collector) Stop(ctx context.Context) error {
	c.live.Stop() // WebSocket connections are hijacked: Shutdown does not close them
	err := c.http.Shutdown(ctx)
	stopped := make(chan struct{})
	// Sensor streams never end by themselves: end them (the committer still commits
	// and applies what they queued) so GracefulStop only waits for query RPCs.
	go func() { c.grpc.GracefulStop(); close(stopped) }()
	c.ingest.EndStreams()
	select {
	case <-stopped:
	case <-ctx.Done():
		c.grpc.Stop()
	}
	c.cancel()
	c.wg.Wait()
	if ierr := c.ingest.Stop(); err == nil {
		err = ierr
	}
	return err
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

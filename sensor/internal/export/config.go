package export

import (
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/tlsfiles"
	"netwatch.dev/proto/wirelimits"
)

// Config of the exporter. Zero values are not defaults: start from DefaultConfig.
type Config struct {
	// Collector is the collector's gRPC address, host:port.
	Collector string
	// SensorID is the stable id of this sensor (defaults to the hostname in main).
	SensorID string
	// Hostname, Interface ("eth0" or "file:NAME") and Version go into the hello.
	Hostname, Interface, Version string
	// Interval is the export interval the capture loop calls Submit at; the collector
	// marks the sensor stale after 3 silent intervals. Default 1 s.
	Interval time.Duration
	// SpoolBytes bounds the batches waiting for an acknowledgement (their marshaled
	// size). When full, the oldest batches are dropped and counted as loss. Default 64 MiB.
	SpoolBytes int64
	// CAFile (PEM) turns on TLS and verifies the collector with it.
	CAFile string
	// CertFile and KeyFile (PEM) are the sensor's client certificate for mTLS; they
	// need CAFile.
	CertFile, KeyFile string
	// ServerName overrides the name checked in the collector's certificate
	// (default: the host of Collector).
	ServerName string
	// Insecure allows plaintext to a collector that is not on loopback.
	Insecure bool
	// Token, when set, is sent as a bearer token (the collector's --sensor-token-file).
	Token string
	// MaxMessageBytes caps one gRPC message; a larger batch is split. Default 16 MiB,
	// which must not exceed the collector's --max-message-bytes.
	MaxMessageBytes int
	// BackoffMin and BackoffMax bound the jittered exponential reconnect delay.
	// Defaults 500 ms and 30 s.
	BackoffMin, BackoffMax time.Duration
}

// DefaultConfig is the documented default (it still needs Collector and SensorID).
func DefaultConfig() Config {
	return Config{
		Interval: time.Second, SpoolBytes: 64 << 20, MaxMessageBytes: 16 << 20,
		BackoffMin: 500 * time.Millisecond, BackoffMax: 30 * time.Second,
	}
}

// Check validates c; errors name the field (a *flagconfig.FieldError).
func (c Config) Check() error {
	if err := flagconfig.CheckDial(c.Collector); err != nil {
		return flagconfig.Fieldf("Collector", "%w", err)
	}
	if err := tlsfiles.CheckPair("CertFile", c.CertFile, "KeyFile", c.KeyFile); err != nil {
		return err
	}
	switch {
	case !wirelimits.ValidID(c.SensorID):
		return flagconfig.Fieldf("SensorID", "must be 1 to %d bytes of %s (what the collector accepts)", wirelimits.MaxIDBytes, wirelimits.IDAlphabet)
	case c.Interval < 10*time.Millisecond:
		return flagconfig.Fieldf("Interval", "%v is below the minimum of 10ms", c.Interval)
	case c.SpoolBytes < 64<<10:
		return flagconfig.Fieldf("SpoolBytes", "%d bytes is below the minimum of 64 KiB", c.SpoolBytes)
	case c.MaxMessageBytes < 64<<10:
		return flagconfig.Fieldf("MaxMessageBytes", "%d is below the minimum of 64 KiB", c.MaxMessageBytes)
	case c.BackoffMin <= 0 || c.BackoffMax < c.BackoffMin:
		return flagconfig.Fieldf("BackoffMin", "min %v and max %v must satisfy 0 < min <= max", c.BackoffMin, c.BackoffMax)
	case c.CertFile != "" && c.CAFile == "":
		return flagconfig.Fieldf("CAFile", "a client certificate (--tls-cert) needs --ca to verify the collector")
	case c.CAFile == "" && !c.Insecure && !flagconfig.Loopback(c.Collector):
		return flagconfig.Fieldf("CAFile", "collector %q is not on loopback; set --ca to use TLS (or --insecure to send in plaintext)", c.Collector)
	}
	return nil
}

package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/reyes-fw/reyes/reyes"
	"github.com/reyes-fw/reyes/ruleset"
)

// MinInterval is the shortest --interval the binaries accept.
const MinInterval = 10 * time.Second

// Defaults of --timeout, which bounds each run of the binaries: well inside
// the 5 minutes the shipped systemd units allow a run (TimeoutStartSec), so
// that a hung endpoint ends in reyes' own error naming the call, not in
// systemd's SIGKILL.
const (
	DefaultLeaderTimeout   = 3 * time.Minute
	DefaultFollowerTimeout = 2 * time.Minute
)

// commonConfig holds the keys of commonOptions.
type commonConfig struct {
	Config      string        `koanf:"config"`
	Store       string        `koanf:"store"`
	Scope       string        `koanf:"scope"`
	S3PathStyle bool          `koanf:"s3_path_style"`
	S3Endpoint  string        `koanf:"s3_endpoint"`
	S3Region    string        `koanf:"s3_region"`
	MaxSize     int64         `koanf:"max_size"`
	Interval    time.Duration `koanf:"interval"`
	LogFormat   string        `koanf:"log_format"`
	LogLevel    string        `koanf:"log_level"`
	Timeout     time.Duration `koanf:"timeout"`
	MaxValidity time.Duration `koanf:"max_validity"`
}

func (c *commonConfig) validate() error {
	if c.Store == "" {
		return fmt.Errorf("%w: store: required (s3://bucket/key or a file path)", reyes.ErrConfig)
	}
	if !ruleset.ValidScope(c.Scope) {
		// The leader would publish "" as "default" while a follower
		// refuses every ruleset: both must name the estate alike.
		return fmt.Errorf("%w: scope: %q is not a scope name (1-64 of A-Z a-z 0-9 . _ : / -, starting with a letter or digit)", reyes.ErrConfig, c.Scope)
	}
	if c.MaxSize <= 0 {
		return fmt.Errorf("%w: max_size: %d is not a positive size", reyes.ErrConfig, c.MaxSize)
	}
	if c.Interval < 0 {
		return fmt.Errorf("%w: interval: %s is negative", reyes.ErrConfig, c.Interval)
	}
	if c.Interval > 0 && c.Interval < MinInterval {
		return fmt.Errorf("%w: interval: %s is shorter than %s (it would hammer the EC2 API or the store)", reyes.ErrConfig, c.Interval, MinInterval)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("%w: timeout: %s is not positive (every run must be bounded)", reyes.ErrConfig, c.Timeout)
	}
	if c.MaxValidity <= 0 {
		return fmt.Errorf("%w: max_validity: %s is not positive", reyes.ErrConfig, c.MaxValidity)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("%w: log_format: %q is not text or json", reyes.ErrConfig, c.LogFormat)
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("%w: log_level: %q is not debug, info, warn or error", reyes.ErrConfig, c.LogLevel)
	}
	return nil
}

func (c *commonConfig) logger(w io.Writer) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: l}
	if c.LogFormat == "json" {
		// JSON would write durations as integer nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (c *commonConfig) storeOptions(log *slog.Logger) reyes.StoreOptions {
	return reyes.StoreOptions{MaxSize: c.MaxSize, PathStyle: c.S3PathStyle, Endpoint: c.S3Endpoint, Region: c.S3Region, Logger: log}
}

// readConfig reads a command's configuration into c: the YAML file, the
// REYES_* environment and the flags, with no argument left over.
func readConfig(c any, name string, opts []option, usage string, args, environ []string, stdout io.Writer) error {
	k, rest, err := loadConfig(name, opts, args, environ, stdout, usage)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", reyes.ErrUsage, rest[0])
	}
	return unmarshalConfig(k, c)
}

// report logs the final error of a run as a JSON record when the log is
// JSON (and marks it reported, so that Exit does not print it again as
// text); in text format Exit prints it as one line.
func (c *commonConfig) report(log *slog.Logger, name string, err error) error {
	if err == nil || c.LogFormat != "json" || ExitCode(err) == ExitOK {
		return err
	}
	log.Error(name+" failed", "err", err.Error(), "exit", ExitCode(err))
	return reportedError{err}
}

// reportEarly reports, as JSON, an error that came before the logger
// existed (a bad flag, an unknown key) when the command line or the
// environment asks for JSON logs: every line on stderr stays JSON.
func reportEarly(name string, args, environ []string, stderr io.Writer, err error) error {
	var rep reportedError
	if err == nil || ExitCode(err) == ExitOK || errors.As(err, &rep) || !jsonRequested(args, environ) {
		// ExitOK: --help, or SIGTERM ending an --interval loop: nothing
		// failed, and no ERROR record may say so.
		return err
	}
	c := commonConfig{LogFormat: "json", LogLevel: "info"}
	attrs := []any{"err", err.Error(), "exit", ExitCode(err)}
	if errors.Is(err, reyes.ErrUsage) {
		attrs = append(attrs, "help", name+" --help")
	}
	c.logger(stderr).Error(name+" failed", attrs...)
	return reportedError{err}
}

// jsonRequested reports whether --log-format json (or =json) is among
// args, or REYES_LOG_FORMAT=json in environ, the flag winning.
func jsonRequested(args, environ []string) bool {
	format := ""
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "REYES_LOG_FORMAT="); ok {
			format = v
		}
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		name, v, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "log-format" || !strings.HasPrefix(a, "-") {
			continue
		}
		if !hasValue && i+1 < len(args) {
			v = args[i+1]
		}
		format = v
	}
	return format == "json"
}

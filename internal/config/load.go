package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// removed names the settings fbpub no longer reads, with why: a
// configuration that still sets one is not refused (nothing it asked for
// is lost), but warned about.
var removed = map[string]string{
	"fast_path":       "fbpub serves every request with Go's net/http since its own HTTP loop was removed",
	"FBPUB_FAST_PATH": "fbpub serves every request with Go's net/http since its own HTTP loop was removed",
}

// LoadFile reads a TOML file over c. Unknown keys are errors.
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	md, err := toml.NewDecoder(bytes.NewReader(b)).Decode(c)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		var keys []string
		for _, k := range und {
			if why, ok := removed[k.String()]; ok {
				c.Warnings = append(c.Warnings, fmt.Sprintf("config: %s: %s was removed and is ignored (%s); delete it", path, k, why))
				continue
			}
			keys = append(keys, k.String())
		}
		if len(keys) > 0 {
			return fmt.Errorf("config: %s: unknown keys: %s", path, strings.Join(keys, ", "))
		}
	}
	return nil
}

// EnvVar is an environment variable fbpub reads, and what it sets.
type EnvVar struct {
	Name string
	set  func(c *Config, v string) error
}

// Env lists the environment variables fbpub reads.
var Env = []EnvVar{
	{"FBPUB_LISTEN", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"FBPUB_HTTP_MAX_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.HTTP.MaxConnections = n
		return err
	}},
	{"FBPUB_HTTP_WRITE_TIMEOUT", func(c *Config, v string) error { return c.HTTP.WriteTimeout.UnmarshalText([]byte(v)) }},
	{"FBPUB_IMAP_ADDR", func(c *Config, v string) error { c.IMAP.Addr = v; return nil }},
	{"FBPUB_IMAP_TLS", func(c *Config, v string) error { c.IMAP.TLS = v; return nil }},
	{"FBPUB_IMAP_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.IMAP.Connections = n
		return err
	}},
	{"FBPUB_IMAP_USER", func(c *Config, v string) error { c.IMAP.User = v; return nil }},
	{"FBPUB_IMAP_PASSWORD", func(c *Config, v string) error { c.IMAP.Password = Secret(v); return nil }},
	{"FBPUB_IMAP_PASSWORD_FILE", func(c *Config, v string) error { c.IMAP.PasswordFile = v; return nil }},
	{"FBPUB_IMAP_CA_FILE", func(c *Config, v string) error { c.IMAP.CAFile = v; return nil }},
	{"FBPUB_MAIL_DOMAIN", func(c *Config, v string) error { c.Publish.MailDomain = v; return nil }},
	{"FBPUB_DEFAULT_ZONE", func(c *Config, v string) error { c.Publish.DefaultZone = v; return nil }},
	{"FBPUB_STATE_DIR", func(c *Config, v string) error { c.Publish.StateDir = v; return nil }},
	{"FBPUB_CHECK_INTERVAL", func(c *Config, v string) error { return c.Publish.CheckInterval.UnmarshalText([]byte(v)) }},
	{"FBPUB_WATCH", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Publish.Watch = n
		return err
	}},
	{"FBPUB_NOTIFY", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Publish.Notify = b
		return err
	}},
	{"FBPUB_NOTIFY_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.Publish.NotifyConnections = n
		return err
	}},
	{"FBPUB_FREEBUSY", func(c *Config, v string) error { c.Access.FreeBusy = v; return nil }},
	{"FBPUB_USER_HEADER", func(c *Config, v string) error { c.Access.UserHeader = v; return nil }},
	{"FBPUB_TRUSTED_PROXIES", func(c *Config, v string) error {
		c.Access.TrustedProxies = strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' })
		return nil
	}},
	{"FBPUB_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"FBPUB_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"FBPUB_REDIS_URL", func(c *Config, v string) error { c.Cache.Redis = RedisURL(v); return nil }},
	{"FBPUB_REDIS_PASSWORD_FILE", func(c *Config, v string) error { c.Cache.RedisPasswordFile = v; return nil }},
}

// ApplyEnv sets what the FBPUB_* variables given by getenv say.
func (c *Config) ApplyEnv(getenv func(string) string) error {
	var errs []error
	for _, e := range Env {
		if v := getenv(e.Name); v != "" {
			if err := e.set(c, v); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: %w", e.Name, err))
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(removed)) {
		if strings.HasPrefix(name, "FBPUB_") && getenv(name) != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("config: %s was removed and is ignored (%s); unset it", name, removed[name]))
		}
	}
	return errors.Join(errs...)
}

// UnknownEnv returns a warning for each FBPUB_* variable of environ
// ("NAME=value" strings, as os.Environ gives them) that names no setting:
// a misspelt one (FBPUB_IMAP_TSL) would otherwise be ignored without a
// word, where an unknown key of the file is an error. The test bed's own
// variables (FBPUB_TEST…, FBPUB_SITE_…, FBPUB_CYRUS_ROOT) are left alone.
func UnknownEnv(environ []string) []string {
	var out []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "FBPUB_") || name == "FBPUB_CONFIG" || removed[name] != "" ||
			strings.HasPrefix(name, "FBPUB_TEST") || strings.HasPrefix(name, "FBPUB_SITE_") || name == "FBPUB_CYRUS_ROOT" ||
			slices.ContainsFunc(Env, func(e EnvVar) bool { return e.Name == name }) {
			continue
		}
		out = append(out, fmt.Sprintf("config: %s is not a setting fbpub knows and is ignored (README lists the FBPUB_* variables)", name))
	}
	slices.Sort(out)
	return out
}

// Flags registers flags on fs that override c when parsed.
func (c *Config) Flags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address (host:port)")
	fs.StringVar(&c.IMAP.Addr, "imap-addr", c.IMAP.Addr, "IMAP server address (host:port)")
	fs.StringVar(&c.IMAP.TLS, "imap-tls", c.IMAP.TLS, "IMAP TLS mode: none, starttls or tls")
	fs.StringVar(&c.IMAP.User, "imap-user", c.IMAP.User, "IMAP login of the publishing proxy")
	fs.StringVar(&c.IMAP.PasswordFile, "imap-password-file", c.IMAP.PasswordFile, "file holding the proxy's IMAP password")
	fs.StringVar(&c.Publish.MailDomain, "mail-domain", c.Publish.MailDomain, "mail domain of owner addresses")
	fs.StringVar(&c.Log.Format, "log-format", c.Log.Format, "log format: text or json")
	fs.StringVar(&c.Log.Level, "log-level", c.Log.Level, "log level: debug, info, warn or error")
}

// Password returns the proxy's password, from PasswordFile when set.
func (c *Config) Password() (string, error) {
	if c.IMAP.PasswordFile == "" {
		return string(c.IMAP.Password), nil
	}
	b, err := os.ReadFile(c.IMAP.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("config: imap.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Package config holds fbpub's configuration: defaults, an optional TOML
// file, FBPUB_* environment variables and command-line flags, applied in
// that order, and validation that reports every problem at once.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
)

// Config is fbpub's whole configuration.
type Config struct {
	// Listen is the HTTP address (host:port).
	Listen  string  `toml:"listen"`
	HTTP    HTTP    `toml:"http"`
	IMAP    IMAP    `toml:"imap"`
	Publish Publish `toml:"publish"`
	Access  Access  `toml:"access"`
	Upload  Upload  `toml:"upload"`
	Log     Log     `toml:"log"`
	Cache   Cache   `toml:"cache"`
	// Teams are the groups of the group URLs (/freebusy/group/<name>.vfb,
	// /freebusy/slots?group=<name>): group name → members, logins or
	// addresses, in the order their answers list them. Not to be confused
	// with access.groups, the requesters' memberships for ACL entries.
	Teams map[string][]string `toml:"groups"`

	// Warnings says which removed settings the file or the environment
	// still sets: they are ignored, and fbpub logs each at start.
	Warnings []string `toml:"-"`
}

// HTTP bounds what HTTP clients may hold of the server.
type HTTP struct {
	// MaxConnections bounds the open HTTP connections; a connection
	// beyond it waits (in the listen queue) until another closes.
	MaxConnections int `toml:"max_connections"`
	// WriteTimeout is how long a write to a client may block: a client
	// that stops reading (while it pipelines requests, or halfway through
	// a large answer) is disconnected after it.
	WriteTimeout Duration `toml:"write_timeout"`
}

// removed names the settings fbpub no longer reads, with why: a
// configuration that still sets one is not refused (nothing it asked for
// is lost), but warned about.
var removed = map[string]string{
	"fast_path":       "fbpub serves every request with Go's net/http since its own HTTP loop was removed",
	"FBPUB_FAST_PATH": "fbpub serves every request with Go's net/http since its own HTTP loop was removed",
}

// Upload configures PUT /calendar/<owner>/<folder>.ics, which writes an
// uploaded calendar into IMAP as the uploader.
type Upload struct {
	Enabled bool `toml:"enabled"`
	// LogFolder is the deleted-events log, a folder of the owner's.
	LogFolder string `toml:"log_folder"`
	MaxBytes  int64  `toml:"max_bytes"`
	MaxEvents int    `toml:"max_events"`
}

// Access says who sees what. The folder ACLs on the IMAP server decide;
// this fills in what the server does not say.
type Access struct {
	// FreeBusy says who sees free/busy times: "public" (everyone, as
	// Outlook looks up anonymously), "authenticated", or "acl" (those
	// holding a right on the folder).
	FreeBusy string `toml:"freebusy"`
	// Groups is the group membership of requesters (group → logins), for
	// ACL entries that name groups ("$team", "group:team").
	Groups map[string][]string `toml:"groups"`
	// Readers names, per owner, who may read the owner's events where
	// the proxy cannot read a folder's ACL (it lacks the "a" right, or
	// the server has no ACLs): ACL identifiers ("bob", "$team",
	// "authenticated"). Where the ACL is readable, it alone decides.
	Readers map[string][]string `toml:"readers"`
	// UserHeader is a request header that names the requester, set by an
	// authenticating reverse proxy ("X-Remote-User"); believed only from
	// TrustedProxies.
	UserHeader     string   `toml:"user_header"`
	TrustedProxies []string `toml:"trusted_proxies"`
	// LoginChecks bounds the requesters' credential checks (IMAP logins)
	// under way at once; a request beyond waits LoginWait for a turn,
	// then gets 503 with Retry-After.
	LoginChecks int      `toml:"login_checks"`
	LoginWait   Duration `toml:"login_wait"`
	// LoginFailuresPerAddress is how many failed logins one client
	// address (the peer, or the address a trusted proxy forwarded; IPv6
	// by /64) may make in a minute before its further attempts get 429;
	// LoginFailures is how many all clients together may make before
	// every attempt with credentials not already verified gets 503.
	LoginFailuresPerAddress int `toml:"login_failures_per_address"`
	LoginFailures           int `toml:"login_failures"`
}

// IMAP says how the proxy identity reaches the server.
type IMAP struct {
	Addr string `toml:"addr"`
	// TLS is none, starttls or tls. Certificates are verified.
	TLS          string `toml:"tls"`
	User         string `toml:"user"`
	Password     Secret `toml:"password"`
	PasswordFile string `toml:"password_file"`
	// CAFile adds trusted certificates (PEM) for a server with a private CA.
	CAFile string `toml:"ca_file"`
	// Timeout bounds each IMAP operation.
	Timeout Duration `toml:"timeout"`
	// Connections bounds the proxy's concurrent IMAP connections (plus
	// one that reads folders from scratch).
	Connections int `toml:"connections"`
}

// TLSMode is imap.tls as the IMAP access takes it: "none", "starttls" or
// "tls", in lower case, or "" when it is none of these.
func (i IMAP) TLSMode() string {
	switch m := strings.ToLower(strings.TrimSpace(i.TLS)); m {
	case "none", "starttls", "tls":
		return m
	}
	return ""
}

// Publish says what is published and how.
type Publish struct {
	// Folders are the folder paths (below each owner's namespace, "/"
	// separated, path.Match patterns) that are calendars.
	Folders []string `toml:"folders"`
	// CheckInterval is how long IMAP folder states are trusted before a
	// request checks them again; 0 checks on every request.
	CheckInterval Duration `toml:"check_interval"`
	// Revalidate is how long the proxy's rights on a folder, its ACL and
	// its annotations are trusted while the folder's state does not move;
	// 0 reads them at every check. It bounds how long a revoked grant
	// that moves no state can go unseen (see README).
	Revalidate Duration `toml:"revalidate"`
	// Discovery is how often fbpub looks, in the background, for users
	// who started or stopped sharing, and re-reads the owners no request
	// asked for.
	Discovery Duration `toml:"discovery"`
	// CheckBudget is how long a request waits for a check of folder
	// states before it gets the last good answer, marked stale, while the
	// check goes on; 0 waits for the check (up to imap.timeout).
	CheckBudget Duration `toml:"check_budget"`
	// PastDays and FutureDays set the default free/busy window.
	PastDays   int `toml:"past_days"`
	FutureDays int `toml:"future_days"`
	// MailDomain completes owner addresses ("alice" → alice@MailDomain).
	MailDomain string `toml:"mail_domain"`
	// DefaultZone places floating and all-day times (IANA name).
	DefaultZone string `toml:"default_zone"`
	// Refresh is the polling interval suggested to feed subscribers.
	Refresh Duration `toml:"refresh"`
	// Watch is how many of the most requested folders are watched with
	// IMAP IDLE, one connection each, so that their changes show at once
	// rather than at the next check; 0 turns pushed changes off
	// altogether, NOTIFY included.
	Watch int `toml:"watch"`
	// Notify watches every published folder on one connection with IMAP
	// NOTIFY (RFC 5465) where the server offers it (Dovecot does); IDLE
	// and Watch are then used only where it does not.
	Notify bool `toml:"notify"`
	// StateDir, when set, keeps folder snapshots across restarts, so a
	// restart costs one state check per folder instead of a full fetch.
	StateDir string `toml:"state_dir"`
	// UserZones gives owners their own zone for floating and all-day
	// times (login → IANA name); others get DefaultZone.
	UserZones map[string]string `toml:"user_zones"`
	// Addresses maps calendar addresses to IMAP logins
	// ("alice.smith@example.org" → "alice"). An address not listed is
	// mapped by dropping its domain.
	Addresses map[string]string `toml:"addresses"`
	// MaxGroup bounds the members of one group request (a configured
	// group or a list of users); more get 400.
	MaxGroup int `toml:"max_group"`
	// WorkingHours is the site's pattern of working hours on each owner's
	// wall clock ("MO-FR 09:00-17:00", see availability.ParseHours), for
	// owners with no VAVAILABILITY in their folders; UserWorkingHours
	// gives owners their own (login → pattern). Empty: the whole day.
	WorkingHours     string            `toml:"working_hours"`
	UserWorkingHours map[string]string `toml:"user_working_hours"`
	// OffHours says how free/busy answers show the time outside working
	// hours: "free" (not marked, the default) or "unavailable"
	// (BUSY-UNAVAILABLE). Common free slots always respect working hours.
	OffHours string `toml:"off_hours"`
	// Links lets owners create secret free/busy links (POST
	// /freebusy/links), which show their free/busy to whoever holds the
	// URL, whatever access.freebusy says.
	Links bool `toml:"links"`
	// PublicURL is fbpub's address as clients reach it
	// ("https://fb.example.org", or with the path a reverse proxy serves
	// it under), which new links start with; empty takes
	// the request's scheme and Host.
	PublicURL string `toml:"public_url"`
}

// Log configures logging.
type Log struct {
	Format string `toml:"format"` // text or json
	Level  string `toml:"level"`  // debug, info, warn, error
}

// Secret is a string that never prints.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}

// LogValue keeps secrets out of structured logs.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// GoString keeps secrets out of %#v.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// Duration is a time.Duration read from strings like "1s" or "15m".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Default returns the defaults: listen on 127.0.0.1:8080, the server on
// 127.0.0.1:143 with STARTTLS, "Calendar" folders, a 1 s check interval.
func Default() Config {
	return Config{
		Listen: "127.0.0.1:8080",
		HTTP:   HTTP{MaxConnections: 1024, WriteTimeout: Duration(30 * time.Second)},
		IMAP: IMAP{
			Addr: "127.0.0.1:143", TLS: "starttls", User: "fbproxy",
			Timeout: Duration(30 * time.Second), Connections: 4,
		},
		Publish: Publish{
			Folders:       []string{"Calendar", "Calendar/*"},
			CheckInterval: Duration(time.Second),
			Revalidate:    Duration(5 * time.Minute),
			Discovery:     Duration(5 * time.Minute),
			CheckBudget:   Duration(300 * time.Millisecond),
			PastDays:      7, FutureDays: 90,
			DefaultZone: "UTC",
			Refresh:     Duration(15 * time.Minute),
			Watch:       4,
			Notify:      true,
			MaxGroup:    100,
			OffHours:    "free",
			Links:       true,
		},
		Access: Access{FreeBusy: "public", LoginChecks: 4, LoginWait: Duration(2 * time.Second), LoginFailuresPerAddress: 10, LoginFailures: 60},
		Upload: Upload{Enabled: true, LogFolder: "Deleted Events", MaxBytes: 10 << 20, MaxEvents: 5000},
		Log:    Log{Format: "text", Level: "info"},
		Cache:  Cache{RedisTimeout: Duration(time.Second)},
	}
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

// Env lists the environment variables fbpub reads, and what they set.
var Env = []struct {
	Name string
	set  func(c *Config, v string) error
}{
	{"FBPUB_LISTEN", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"FBPUB_HTTP_MAX_CONNECTIONS", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		c.HTTP.MaxConnections = n
		return err
	}},
	{"FBPUB_HTTP_WRITE_TIMEOUT", func(c *Config, v string) error { return c.HTTP.WriteTimeout.UnmarshalText([]byte(v)) }},
	{"FBPUB_IMAP_ADDR", func(c *Config, v string) error { c.IMAP.Addr = v; return nil }},
	{"FBPUB_IMAP_TLS", func(c *Config, v string) error { c.IMAP.TLS = v; return nil }},
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

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("config: "+format, a...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port", c.Listen)
	}
	if c.HTTP.MaxConnections < 1 || c.HTTP.MaxConnections > 1<<20 {
		bad("http.max_connections: %d is not between 1 and 1048576", c.HTTP.MaxConnections)
	}
	if c.HTTP.WriteTimeout < Duration(time.Second) {
		bad("http.write_timeout: %s is shorter than 1s", time.Duration(c.HTTP.WriteTimeout))
	}
	if _, _, err := net.SplitHostPort(c.IMAP.Addr); err != nil {
		bad("imap.addr: %q is not host:port", c.IMAP.Addr)
	}
	if c.IMAP.TLSMode() == "" {
		bad("imap.tls: %q is not none, starttls or tls", c.IMAP.TLS)
	}
	if c.IMAP.User == "" {
		bad("imap.user is empty")
	}
	if c.IMAP.Password != "" && c.IMAP.PasswordFile != "" {
		bad("imap.password and imap.password_file are both set")
	}
	if c.IMAP.Connections < 1 || c.IMAP.Connections > 64 {
		bad("imap.connections: %d is not between 1 and 64", c.IMAP.Connections)
	}
	if c.IMAP.Timeout < Duration(time.Second) {
		bad("imap.timeout: %s is shorter than 1s", time.Duration(c.IMAP.Timeout))
	}
	if len(c.Publish.Folders) == 0 {
		bad("publish.folders is empty")
	}
	if c.Publish.CheckInterval < 0 {
		bad("publish.check_interval is negative")
	}
	if c.Publish.Revalidate < 0 || c.Publish.Revalidate > Duration(24*time.Hour) {
		bad("publish.revalidate: %s is not between 0s and 24h", time.Duration(c.Publish.Revalidate))
	}
	if c.Publish.Discovery < Duration(time.Second) || c.Publish.Discovery > Duration(24*time.Hour) {
		bad("publish.discovery: %s is not between 1s and 24h", time.Duration(c.Publish.Discovery))
	}
	// Compared with a valid timeout only: a bad one is reported itself.
	if c.Publish.CheckBudget < 0 || (c.Publish.CheckBudget >= c.IMAP.Timeout && c.IMAP.Timeout >= Duration(time.Second)) {
		bad("publish.check_budget: %s is not between 0s and imap.timeout (%s)", time.Duration(c.Publish.CheckBudget), time.Duration(c.IMAP.Timeout))
	}
	if c.Publish.Watch < 0 || c.Publish.Watch > 64 {
		bad("publish.watch: %d is not between 0 and 64", c.Publish.Watch)
	}
	if c.Publish.PastDays < 0 || c.Publish.PastDays > 366 {
		bad("publish.past_days: %d is not between 0 and 366", c.Publish.PastDays)
	}
	if c.Publish.FutureDays < 1 || c.Publish.FutureDays > 3660 {
		bad("publish.future_days: %d is not between 1 and 3660", c.Publish.FutureDays)
	}
	if _, err := time.LoadLocation(c.Publish.DefaultZone); err != nil {
		bad("publish.default_zone: unknown zone %q", c.Publish.DefaultZone)
	}
	for _, user := range sortedKeys(c.Publish.UserZones) {
		if _, err := time.LoadLocation(c.Publish.UserZones[user]); err != nil {
			bad("publish.user_zones: %s: unknown zone %q", user, c.Publish.UserZones[user])
		}
	}
	for _, addr := range sortedKeys(c.Publish.Addresses) {
		if !strings.Contains(addr, "@") || c.Publish.Addresses[addr] == "" {
			bad("publish.addresses: %q → %q is not an address and a login", addr, c.Publish.Addresses[addr])
		}
	}
	c.validateTeams(bad)
	c.validateCache(bad)
	if _, err := acl.ParseVisibility(c.Access.FreeBusy); err != nil {
		bad("access.freebusy: %q is not public, authenticated or acl", c.Access.FreeBusy)
	}
	for _, owner := range slices.Sorted(maps.Keys(c.Access.Readers)) {
		for _, id := range c.Access.Readers[owner] {
			switch parsed, err := acl.ParseIdentifier(id); {
			case err != nil:
				bad("access.readers: %s: %q is not an ACL identifier", owner, id)
			case parsed.Negative:
				bad("access.readers: %s: %q is a negative right; list only who may read", owner, id)
			}
		}
	}
	if _, err := c.TrustedProxies(); err != nil {
		bad("access.trusted_proxies: %v", err)
	}
	if c.Access.UserHeader != "" && len(c.Access.TrustedProxies) == 0 {
		bad("access.user_header is set but access.trusted_proxies is empty: the header would be believed from no one")
	}
	if c.Access.LoginChecks < 1 || c.Access.LoginChecks > 64 {
		bad("access.login_checks: %d is not between 1 and 64", c.Access.LoginChecks)
	}
	if c.Access.LoginWait < 0 || c.Access.LoginWait > Duration(time.Minute) {
		bad("access.login_wait: %s is not between 0s and 1m", time.Duration(c.Access.LoginWait))
	}
	if c.Access.LoginFailuresPerAddress < 1 || c.Access.LoginFailuresPerAddress > 10000 {
		bad("access.login_failures_per_address: %d is not between 1 and 10000", c.Access.LoginFailuresPerAddress)
	}
	if c.Access.LoginFailures < c.Access.LoginFailuresPerAddress || c.Access.LoginFailures > 1000000 {
		bad("access.login_failures: %d is not between access.login_failures_per_address (%d) and 1000000", c.Access.LoginFailures, c.Access.LoginFailuresPerAddress)
	}
	if c.Upload.LogFolder == "" || strings.HasPrefix(c.Upload.LogFolder, "/") || strings.Contains(c.Upload.LogFolder, "..") {
		bad("upload.log_folder: %q is not a folder path", c.Upload.LogFolder)
	}
	for _, pat := range c.Publish.Folders {
		if ok, _ := path.Match(pat, c.Upload.LogFolder); ok {
			bad("upload.log_folder: %q would be published (publish.folders %q)", c.Upload.LogFolder, pat)
		}
	}
	if c.Upload.MaxBytes < 1024 || c.Upload.MaxBytes > 1<<30 {
		bad("upload.max_bytes: %d is not between 1024 and 1 GiB", c.Upload.MaxBytes)
	}
	if c.Upload.MaxEvents < 1 || c.Upload.MaxEvents > 1000000 {
		bad("upload.max_events: %d is not between 1 and 1000000", c.Upload.MaxEvents)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is not text or json", c.Log.Format)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Zones returns a lookup of each owner's zone for floating and all-day
// times, resolved once: the per-owner zone, else the default zone.
func (c *Config) Zones() func(user string) *time.Location {
	def, err := time.LoadLocation(c.Publish.DefaultZone)
	if err != nil {
		def = time.UTC
	}
	zones := map[string]*time.Location{}
	for user, name := range c.Publish.UserZones {
		if loc, err := time.LoadLocation(name); err == nil {
			zones[user] = loc
		}
	}
	return func(user string) *time.Location {
		if loc, ok := zones[user]; ok {
			return loc
		}
		return def
	}
}

// TrustedProxies parses access.trusted_proxies: addresses or CIDR prefixes.
func (c *Config) TrustedProxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range c.Access.TrustedProxies {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a prefix", v)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// Policy builds the access policy; semantics says how the server
// combines ACL entries (see acl.Policy).
func (c *Config) Policy(semantics func(owner string) *acl.Options) *acl.Policy {
	v, _ := acl.ParseVisibility(c.Access.FreeBusy)
	p := &acl.Policy{FreeBusy: v, Semantics: semantics, Groups: c.Groups()}
	if len(c.Access.Readers) > 0 {
		p.Readers = map[string]acl.ACL{}
		for owner, ids := range c.Access.Readers {
			pairs := map[string]string{}
			for _, id := range ids {
				pairs[id] = "lr"
			}
			p.Readers[owner], _ = acl.Parse(pairs)
		}
	}
	return p
}

// Groups returns the configured group membership.
func (c *Config) Groups() acl.Groups { return acl.Groups(c.Access.Groups) }

// Logger builds the logger the configuration asks for.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// validateTeams checks the keys of group requests and working hours.
func (c *Config) validateTeams(bad func(format string, a ...any)) {
	if c.Publish.MaxGroup < 1 || c.Publish.MaxGroup > 10000 {
		bad("publish.max_group: %d is not between 1 and 10000", c.Publish.MaxGroup)
	}
	if c.Publish.WorkingHours != "" {
		if _, err := availability.ParseHours(c.Publish.WorkingHours); err != nil {
			bad("publish.working_hours: %v", strings.TrimPrefix(err.Error(), "availability: "))
		}
	}
	for _, user := range sortedKeys(c.Publish.UserWorkingHours) {
		if _, err := availability.ParseHours(c.Publish.UserWorkingHours[user]); err != nil {
			bad("publish.user_working_hours: %s: %v", user, strings.TrimPrefix(err.Error(), "availability: "))
		}
	}
	if u := c.Publish.PublicURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || pu.User != nil || pu.RawQuery != "" || pu.Fragment != "" {
			bad("publish.public_url: %q is not a URL like https://fb.example.org", u)
		}
	}
	switch c.Publish.OffHours {
	case "free", "unavailable":
	default:
		bad("publish.off_hours: %q is not free or unavailable", c.Publish.OffHours)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Teams)) {
		members := c.Teams[name]
		switch {
		case name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\?#%") || strings.ContainsFunc(name, unicode.IsControl):
			bad("groups: %q is not a name that fits in a URL", name)
		case len(members) == 0:
			bad("groups: %s has no members", name)
		case len(members) > c.Publish.MaxGroup:
			bad("groups: %s has %d members, more than publish.max_group (%d)", name, len(members), c.Publish.MaxGroup)
		}
		for _, m := range members {
			if !memberName(m) {
				bad("groups: %s: %q is not a login or an address", name, m)
			}
		}
	}
}

// WorkingHours returns a lookup of each owner's configured working hours,
// parsed once: the owner's own pattern, else the site's; nil (the whole
// day) when neither is set. Patterns that do not parse are nil here;
// Validate reports them.
func (c *Config) WorkingHours() func(user string) *availability.Hours {
	def, _ := availability.ParseHours(c.Publish.WorkingHours)
	if c.Publish.WorkingHours == "" {
		def = nil
	}
	users := map[string]*availability.Hours{}
	for user, s := range c.Publish.UserWorkingHours {
		if h, err := availability.ParseHours(s); err == nil {
			users[strings.ToLower(user)] = h
		}
	}
	return func(user string) *availability.Hours {
		if h, ok := users[strings.ToLower(user)]; ok {
			return h
		}
		return def
	}
}

// memberName reports whether a group member is a name the group URLs
// accept, as they accept names in URLs: a login or an address, at most
// 128 bytes of UTF-8 without spaces at its ends or control characters.
func memberName(m string) bool {
	if m == "" || m == "." || m == ".." || len(m) > 128 || !utf8.ValidString(m) || m != strings.TrimSpace(m) || strings.ContainsFunc(m, unicode.IsControl) {
		return false
	}
	local, domain, isAddr := strings.Cut(m, "@")
	return !isAddr || (local != "" && domain != "" && !strings.Contains(domain, "@"))
}

// Cache configures the state several fbpub replicas share through one
// Redis (or Valkey): see internal/shared and README, "Several replicas".
// Without it every replica keeps its own state, which is all one needs.
type Cache struct {
	// Redis is the URL of the Redis replicas share:
	// redis://[[user]:password@]host[:port][/db], rediss:// for TLS.
	// Empty: none.
	Redis RedisURL `toml:"redis"`
	// RedisPasswordFile holds Redis' password (the URL then holds none).
	RedisPasswordFile string `toml:"redis_password_file"`
	// RedisCAFile adds trusted certificates (PEM) for a rediss:// server
	// with a private CA.
	RedisCAFile string `toml:"redis_ca_file"`
	// RedisTimeout bounds each Redis operation; past it the replica
	// falls back to its local state.
	RedisTimeout Duration `toml:"redis_timeout"`
}

// RedisURL is a Redis URL, which may hold a password: it prints with the
// password replaced by "xxxxx" and without its query.
type RedisURL string

func (u RedisURL) String() string {
	if u == "" {
		return ""
	}
	p, err := url.Parse(string(u))
	if err != nil {
		return "(a Redis URL that does not parse)"
	}
	return redactURL(p)
}

// redactURL shows u with its password replaced by "xxxxx" and without its
// query and fragment (go-redis reads a password from ?password=).
func redactURL(u *url.URL) string {
	v := *u
	v.RawQuery, v.ForceQuery, v.Fragment, v.RawFragment = "", false, "", ""
	return v.Redacted()
}

// LogValue keeps the password out of structured logs.
func (u RedisURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// GoString keeps the password out of %#v.
func (u RedisURL) GoString() string { return strconv.Quote(u.String()) }

// RedisPassword returns Redis' password from cache.redis_password_file, or
// "" when the file is not set (the URL's, if any, is then used).
func (c *Config) RedisPassword() (string, error) {
	if c.Cache.RedisPasswordFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(c.Cache.RedisPasswordFile)
	if err != nil {
		return "", fmt.Errorf("config: cache.redis_password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// validateCache checks the cache keys. Messages show the URL with its
// password replaced, or not at all when it does not parse.
func (c *Config) validateCache(bad func(format string, a ...any)) {
	k := c.Cache
	if k.RedisTimeout < Duration(10*time.Millisecond) || k.RedisTimeout > Duration(30*time.Second) {
		bad("cache.redis_timeout: %s is not between 10ms and 30s", time.Duration(k.RedisTimeout))
	}
	if k.Redis == "" {
		if k.RedisPasswordFile != "" {
			bad("cache.redis_password_file is set but cache.redis is empty")
		}
		if k.RedisCAFile != "" {
			bad("cache.redis_ca_file is set but cache.redis is empty")
		}
		return
	}
	u, err := url.Parse(string(k.Redis))
	if err != nil {
		bad("cache.redis is not a URL like redis://127.0.0.1:6379/0")
		return
	}
	shown := redactURL(u)
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		bad("cache.redis: %s: the scheme is not redis or rediss", shown)
		return
	}
	if u.Opaque != "" || u.Hostname() == "" {
		bad("cache.redis: %s has no host", shown)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			bad("cache.redis: %s: port %q is not between 1 and 65535", shown, p)
		}
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || strconv.Itoa(n) != db {
			bad("cache.redis: %s: %q is not a database number", shown, db)
		}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		bad("cache.redis: %s: query parameters and fragments are not read; use the cache.redis_* keys", shown)
	}
	if _, has := u.User.Password(); has && k.RedisPasswordFile != "" {
		bad("cache.redis holds a password and cache.redis_password_file is set")
	}
	if k.RedisCAFile != "" && u.Scheme != "rediss" {
		bad("cache.redis_ca_file is set but cache.redis is not rediss:// (TLS)")
	}
}

// Package config holds fbpub's configuration: defaults, an optional TOML
// file, FBPUB_* environment variables and command-line flags, applied in
// that order, and validation that reports every problem at once.
//
// The files split it by concern: config.go holds the Config types and their
// defaults (Default); load.go reads a TOML file, the environment and flags
// over them (LoadFile, ApplyEnv, Flags) and the password kept in a file
// (Password); validate.go checks the result (Validate); derived.go builds
// what the rest of fbpub uses from a valid Config (Zones, TrustedProxies,
// Policy, Groups, WorkingHours, Logger); cache.go holds the [cache] block of
// the Redis that replicas share, its validation and its password included.
package config

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// MaxNotifyConnections bounds publish.notify_connections.
const MaxNotifyConnections = 16

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
	// RevalidateWatched is how long an owner whose folders NOTIFY all
	// watches goes without a check while the server announces no
	// change: Dovecot announces a SETACL and a SETMETADATA on a watched
	// folder, so this only bounds what changes without a word (a global
	// ACL file). 0 means revalidate.
	RevalidateWatched Duration `toml:"revalidate_watched"`
	// Discovery is how often fbpub looks, in the background, for users
	// who started or stopped sharing, and re-reads the owners no request
	// asked for; less often where a pass takes more than a hundredth of
	// it (feed's discoveryShare).
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
	// Notify watches the published folders with IMAP NOTIFY (RFC 5465)
	// where the server offers it (Dovecot does); IDLE and Watch are then
	// used only where it does not.
	Notify bool `toml:"notify"`
	// NotifyConnections bounds the NOTIFY connections: each watches up
	// to 2,000 folders (fewer where their names fill 60 KiB),
	// and a second one opens only when more are published; 1 watches the
	// most requested folders on one connection. 1 to
	// MaxNotifyConnections.
	NotifyConnections int `toml:"notify_connections"`
	// StateDir, when set, keeps folder snapshots and the directory of
	// owners across restarts, so a restart costs one state check per
	// folder instead of a full fetch, and a known owner's first request
	// does not wait for the server's listing.
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
			Folders:           []string{"Calendar", "Calendar/*"},
			CheckInterval:     Duration(time.Second),
			Revalidate:        Duration(5 * time.Minute),
			RevalidateWatched: Duration(time.Hour),
			Discovery:         Duration(5 * time.Minute),
			CheckBudget:       Duration(300 * time.Millisecond),
			PastDays:          7, FutureDays: 90,
			DefaultZone:       "UTC",
			Refresh:           Duration(15 * time.Minute),
			Watch:             4,
			Notify:            true,
			NotifyConnections: 4,
			MaxGroup:          100,
			OffHours:          "free",
			Links:             true,
		},
		Access: Access{FreeBusy: "public", LoginChecks: 4, LoginWait: Duration(2 * time.Second), LoginFailuresPerAddress: 10, LoginFailures: 60},
		Upload: Upload{Enabled: true, LogFolder: "Deleted Events", MaxBytes: 10 << 20, MaxEvents: 5000},
		Log:    Log{Format: "text", Level: "info"},
		Cache:  Cache{RedisTimeout: Duration(time.Second), MaxBytes: DefaultCacheMaxBytes},
	}
}

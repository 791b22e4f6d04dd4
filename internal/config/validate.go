package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
)

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("config: "+format, a...)) }
	c.validateHTTP(bad)
	c.validateIMAP(bad)
	c.validatePublish(bad)
	c.validateTeams(bad)
	c.validateCache(bad)
	c.validateAccess(bad)
	c.validateUpload(bad)
	c.validateLog(bad)
	return errors.Join(errs...)
}

// validateHTTP checks the HTTP listener and what clients may hold of it.
func (c *Config) validateHTTP(bad func(format string, a ...any)) {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen: %q is not host:port", c.Listen)
	}
	if c.HTTP.MaxConnections < 1 || c.HTTP.MaxConnections > 1<<20 {
		bad("http.max_connections: %d is not between 1 and 1048576", c.HTTP.MaxConnections)
	}
	if c.HTTP.WriteTimeout < Duration(time.Second) {
		bad("http.write_timeout: %s is shorter than 1s", time.Duration(c.HTTP.WriteTimeout))
	}
}

// validateIMAP checks how the proxy reaches the IMAP server.
func (c *Config) validateIMAP(bad func(format string, a ...any)) {
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
}

// validatePublish checks what is published and when it is checked; the
// groups and working hours are validateTeams'.
func (c *Config) validatePublish(bad func(format string, a ...any)) {
	if len(c.Publish.Folders) == 0 {
		bad("publish.folders is empty")
	}
	for _, pat := range c.Publish.Folders {
		// path.Match reports a malformed pattern only when it reaches the
		// bad part; matching it against itself reaches every part.
		if _, err := path.Match(pat, pat); err != nil || pat == "" {
			bad("publish.folders: %q is not a folder pattern (path.Match: * ? [class] \\ escapes)", pat)
		}
	}
	if c.Publish.CheckInterval < 0 {
		bad("publish.check_interval is negative")
	}
	if c.Publish.Revalidate < 0 || c.Publish.Revalidate > Duration(24*time.Hour) {
		bad("publish.revalidate: %s is not between 0s and 24h", time.Duration(c.Publish.Revalidate))
	}
	if c.Publish.RevalidateWatched < 0 || c.Publish.RevalidateWatched > Duration(24*time.Hour) {
		bad("publish.revalidate_watched: %s is not between 0s and 24h", time.Duration(c.Publish.RevalidateWatched))
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
	if c.Publish.NotifyConnections < 1 || c.Publish.NotifyConnections > MaxNotifyConnections {
		bad("publish.notify_connections: %d is not between 1 and %d", c.Publish.NotifyConnections, MaxNotifyConnections)
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
}

// validateAccess checks who sees what and the bounds of credential checks.
func (c *Config) validateAccess(bad func(format string, a ...any)) {
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
}

// validateUpload checks the upload limits and the deleted-events log folder.
func (c *Config) validateUpload(bad func(format string, a ...any)) {
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
}

// validateLog checks the log format and level.
func (c *Config) validateLog(bad func(format string, a ...any)) {
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format: %q is not text or json", c.Log.Format)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
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

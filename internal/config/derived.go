package config

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/availability"
)

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

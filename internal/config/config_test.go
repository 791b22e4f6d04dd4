package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGoodFile(t *testing.T) {
	c := Default()
	if err := c.LoadFile("testdata/good.toml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c.IMAP.Addr != "imap.example.org:993" || c.IMAP.Connections != 8 || time.Duration(c.Publish.CheckInterval) != 2*time.Second ||
		c.Publish.PastDays != 0 || len(c.Publish.Folders) != 3 || c.Log.Format != "json" ||
		c.HTTP.MaxConnections != 256 || time.Duration(c.HTTP.WriteTimeout) != 20*time.Second || len(c.Warnings) != 0 ||
		c.Publish.NotifyConnections != 2 {
		t.Errorf("LoadFile(good.toml) = %+v", c)
	}
	if time.Duration(c.Publish.Revalidate) != time.Minute || time.Duration(c.Publish.Discovery) != 10*time.Minute ||
		time.Duration(c.Publish.CheckBudget) != 500*time.Millisecond || time.Duration(c.Publish.RevalidateWatched) != 2*time.Hour {
		t.Errorf("LoadFile(good.toml): revalidate %s, revalidate_watched %s, discovery %s, check_budget %s; want 1m, 2h, 10m, 500ms",
			time.Duration(c.Publish.Revalidate), time.Duration(c.Publish.RevalidateWatched), time.Duration(c.Publish.Discovery), time.Duration(c.Publish.CheckBudget))
	}
	p := c.Policy(nil)
	if p.FreeBusy != "authenticated" || len(p.Readers["alice"]) != 3 {
		t.Errorf("Policy() = %+v", p)
	}
	if ps, err := c.TrustedProxies(); err != nil || len(ps) != 3 || ps[0].String() != "127.0.0.1/32" || ps[2].String() != "::1/128" {
		t.Errorf("TrustedProxies() = %v, %v", ps, err)
	}
	if g := c.Groups().Of("dave"); len(g) != 1 || g[0] != "team" {
		t.Errorf("Groups().Of(dave) = %v", g)
	}
	if c.Publish.MaxGroup != 50 || c.Publish.OffHours != "unavailable" || len(c.Teams["team"]) != 3 || c.Teams["team"][2] != "carol@example.org" {
		t.Errorf("LoadFile(good.toml): max_group %d, off_hours %q, groups %v", c.Publish.MaxGroup, c.Publish.OffHours, c.Teams)
	}
	if c.Publish.Links || c.Publish.PublicURL != "https://fb.example.org" {
		t.Errorf("LoadFile(good.toml): links %v, public_url %q", c.Publish.Links, c.Publish.PublicURL)
	}
	hours := c.WorkingHours()
	if h := hours("alice"); h.String() != "MO-FR 09:00-17:00" {
		t.Errorf("WorkingHours()(alice) = %q, want the site's", h)
	}
	if h := hours("Carol"); h.String() != "MO-TH 08:00-12:00,13:00-16:00; FR 08:00-12:00" {
		t.Errorf("WorkingHours()(Carol) = %q, want carol's own", h)
	}
	if a := c.Access; a.LoginChecks != 8 || time.Duration(a.LoginWait) != 500*time.Millisecond || a.LoginFailuresPerAddress != 5 || a.LoginFailures != 100 {
		t.Errorf("LoadFile(good.toml): login limits %d %s %d %d", a.LoginChecks, time.Duration(a.LoginWait), a.LoginFailuresPerAddress, a.LoginFailures)
	}
}

func TestTeamDefaults(t *testing.T) {
	c := Default()
	if c.Publish.MaxGroup != 100 || c.Publish.OffHours != "free" || c.Publish.WorkingHours != "" {
		t.Errorf("Default(): max_group %d, off_hours %q, working_hours %q", c.Publish.MaxGroup, c.Publish.OffHours, c.Publish.WorkingHours)
	}
	if !c.Publish.Links || c.Publish.PublicURL != "" {
		t.Errorf("Default(): links %v, public_url %q; want links on, no public URL", c.Publish.Links, c.Publish.PublicURL)
	}
	if c.Publish.NotifyConnections != 4 {
		t.Errorf("Default(): notify_connections %d, want 4", c.Publish.NotifyConnections)
	}
	if h := c.WorkingHours()("alice"); h != nil {
		t.Errorf("WorkingHours() with nothing configured = %q, want nil (the whole day)", h)
	}
}

// TestBadFiles checks each bad configuration in testdata against the exact
// error fbpub reports for it (NAME.toml → NAME.err).
func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.err")
	if len(files) == 0 {
		t.Fatal("no bad configurations in testdata")
	}
	for _, errFile := range files {
		want, _ := os.ReadFile(errFile)
		c := Default()
		err := c.LoadFile(strings.TrimSuffix(errFile, ".err") + ".toml")
		if err == nil {
			err = c.Validate()
		}
		if got := fmt.Sprint(err); got != strings.TrimSpace(string(want)) {
			t.Errorf("%s:\n got: %s\nwant: %s", errFile, got, want)
		}
	}
}

func TestEnvOverridesAndSecrets(t *testing.T) {
	env := map[string]string{
		"FBPUB_IMAP_ADDR":     "127.0.0.1:10143",
		"FBPUB_IMAP_TLS":      "none",
		"FBPUB_IMAP_USER":     "proxy",
		"FBPUB_IMAP_PASSWORD": "s3cret-pw",
		"FBPUB_LISTEN":        "127.0.0.1:9999",

		"FBPUB_HTTP_MAX_CONNECTIONS": "64",
		"FBPUB_HTTP_WRITE_TIMEOUT":   "5s",
		"FBPUB_NOTIFY_CONNECTIONS":   "2",
		"FBPUB_IMAP_CONNECTIONS":     "3",
	}
	c := Default()
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.IMAP.Addr != "127.0.0.1:10143" || c.IMAP.TLS != "none" || c.IMAP.User != "proxy" || c.Listen != "127.0.0.1:9999" ||
		c.HTTP.MaxConnections != 64 || time.Duration(c.HTTP.WriteTimeout) != 5*time.Second || c.Publish.NotifyConnections != 2 ||
		c.IMAP.Connections != 3 {
		t.Errorf("ApplyEnv: %+v", c)
	}
	if pw, _ := c.Password(); pw != "s3cret-pw" {
		t.Errorf("Password() = %q", pw)
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprint(c.IMAP.Password)} {
		if strings.Contains(s, "s3cret-pw") {
			t.Errorf("password printed: %s", s)
		}
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("from-file\n"), 0o600)
	c.IMAP.Password, c.IMAP.PasswordFile = "", pwFile
	if pw, err := c.Password(); pw != "from-file" || err != nil {
		t.Errorf("Password() from file = %q, %v", pw, err)
	}
}

// TestContribExample keeps the annotated example configuration valid.
func TestContribExample(t *testing.T) {
	c := Default()
	if err := c.LoadFile("../../contrib/fbpub.toml"); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Publish.UserZones["carol"] != "America/New_York" || c.IMAP.PasswordFile == "" {
		t.Errorf("contrib/fbpub.toml read as %+v", c)
	}
}

// TestRemovedSettings: a file or an environment that still sets a removed
// setting (fast_path) loads, with a warning that says what to do; other
// unknown keys in the same file are still errors.
func TestRemovedSettings(t *testing.T) {
	c := Default()
	err := c.LoadFile("testdata/removed-fast-path.toml")
	if want := "config: testdata/removed-fast-path.toml: unknown keys: imap.adress"; fmt.Sprint(err) != want {
		t.Errorf("LoadFile(removed-fast-path.toml) = %v, want %s", err, want)
	}
	want := []string{"config: testdata/removed-fast-path.toml: fast_path was removed and is ignored " +
		"(fbpub serves every request with Go's net/http since its own HTTP loop was removed); delete it"}
	if !slices.Equal(c.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", c.Warnings, want)
	}

	c = Default()
	old := filepath.Join(t.TempDir(), "old.toml")
	os.WriteFile(old, []byte("fast_path = true\n"), 0o600)
	if err := c.LoadFile(old); err != nil || len(c.Warnings) != 1 {
		t.Errorf("LoadFile(%q) = %v, warnings %q; want no error and one warning", old, err, c.Warnings)
	}
	c = Default()
	env := map[string]string{"FBPUB_FAST_PATH": "false", "FBPUB_LISTEN": "127.0.0.1:9"}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	want = []string{"config: FBPUB_FAST_PATH was removed and is ignored " +
		"(fbpub serves every request with Go's net/http since its own HTTP loop was removed); unset it"}
	if !slices.Equal(c.Warnings, want) || c.Listen != "127.0.0.1:9" {
		t.Errorf("ApplyEnv: warnings %q, listen %q; want %q, 127.0.0.1:9", c.Warnings, c.Listen, want)
	}
}

// TestRedisSettings: the cache.redis keys from a file and the environment,
// the password from a file, and a password in the URL shown nowhere: not
// when the configuration is printed or logged, not in validation errors.
func TestRedisSettings(t *testing.T) {
	c := Default()
	if c.Cache.Redis != "" || time.Duration(c.Cache.RedisTimeout) != time.Second {
		t.Errorf("Default(): cache.redis %q, redis_timeout %s; want none, 1s", c.Cache.Redis, time.Duration(c.Cache.RedisTimeout))
	}
	if err := c.LoadFile("testdata/good.toml"); err != nil {
		t.Fatal(err)
	}
	if k := c.Cache; k.Redis != "rediss://fbpub@redis.example.org:6380/2" || k.RedisPasswordFile != "/etc/fbpub/redis-password" ||
		k.RedisCAFile != "/etc/fbpub/redis-ca.pem" || time.Duration(k.RedisTimeout) != 500*time.Millisecond {
		t.Errorf("LoadFile(good.toml): cache %+v", k)
	}

	const pw = "hunter2-redis"
	pwFile := filepath.Join(t.TempDir(), "redis-pw")
	os.WriteFile(pwFile, []byte(pw+"\n"), 0o600)
	c = Default()
	env := map[string]string{"FBPUB_REDIS_URL": "redis://127.0.0.1:6379/0", "FBPUB_REDIS_PASSWORD_FILE": pwFile}
	if err := c.ApplyEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got, err := c.RedisPassword(); got != pw || err != nil {
		t.Errorf("RedisPassword() = %q, %v; want %q from the file", got, err, pw)
	}

	c = Default()
	c.Cache.Redis = RedisURL("redis://:" + pw + "@127.0.0.1:6379/0?password=" + pw)
	var logged strings.Builder
	c.Logger(&logged).Info("config", "cache", c.Cache, "redis", c.Cache.Redis)
	err := c.Validate()
	if err == nil {
		t.Error("Validate of a URL with a query: no error")
	}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), c.Cache.Redis.String(), logged.String(), fmt.Sprint(err)} {
		if strings.Contains(s, pw) {
			t.Errorf("Redis password shown: %s", s)
		}
	}
	if got := c.Cache.Redis.String(); got != "redis://:xxxxx@127.0.0.1:6379/0" {
		t.Errorf("RedisURL.String() = %q", got)
	}
	for _, f := range []string{"bad-redis.err", "bad-redis-scheme.err", "bad-redis-parse.err"} {
		if b, _ := os.ReadFile(filepath.Join("testdata", f)); strings.Contains(string(b), "hunter2") {
			t.Errorf("testdata/%s shows the password", f)
		}
	}
}

// TestContribHasEveryKey: contrib/fbpub.toml, which README names as the
// file with every key, names every key of Config (set or commented out),
// each in its section, but imap.password, which it tells to keep out.
func TestContribHasEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../contrib/fbpub.toml")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]string{} // section → its text
	section := ""
	for _, line := range strings.Split(string(b), "\n") {
		if m := regexp.MustCompile(`^\s*#?\s*\[([a-z_.]+)\]`).FindStringSubmatch(line); m != nil {
			section = m[1]
		}
		sections[section] += line + "\n"
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			key := f.Tag.Get("toml")
			if key == "" || key == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct && f.Type.Name() != "Duration" && f.Type.Name() != "RedisURL" {
				walk(key, f.Type)
				continue
			}
			if prefix+"."+key == "imap.password" {
				continue
			}
			re := regexp.MustCompile(`(?m)^\s*#?\s*` + regexp.QuoteMeta(key) + `\s*=`)
			if !re.MatchString(sections[prefix]) && !(prefix == "" && key == "groups" && sections["groups"] != "") {
				t.Errorf("contrib/fbpub.toml does not name %s", strings.TrimPrefix(prefix+"."+key, "."))
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
}

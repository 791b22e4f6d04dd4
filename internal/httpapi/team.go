package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/fbpub/fbpub/internal/calendar"
)

// The scheduling page: GET /team/<group> and GET /team?user=…&user=…
// answer an HTML page whose script (team/team.js) asks fbpub's own
// endpoints, with the page's credentials, for the members' free/busy
// (the group URL, as JSON) and their common free slots, and draws a week
// of them in the viewer's time zone. The page, its script and its style
// sheet are embedded in the binary; the page loads nothing from
// elsewhere, and its Content-Security-Policy says so.
//
// Who asks is settled as for every other URL: when free/busy is not
// public, an anonymous request gets 401 before anything is looked up.
// Names from the URL reach the page only through html/template, and the
// script writes them with textContent.

//go:embed team/team.html team/team.js team/team.css
var teamFiles embed.FS

// teamAsset is an embedded file of the page, with its headers.
type teamAsset struct {
	body        []byte
	contentType string
	etag        string
}

var (
	teamAssets = map[string]*teamAsset{}
	// teamVersion changes when any asset does: the page names its assets
	// with it, so that they can be cached for long.
	teamVersion string
	teamPage    *template.Template
)

func init() {
	all := sha256.New()
	for name, ct := range map[string]string{"team.js": "text/javascript; charset=utf-8", "team.css": "text/css; charset=utf-8"} {
		b, err := teamFiles.ReadFile("team/" + name)
		if err != nil {
			panic(err)
		}
		sum := sha256.Sum256(b)
		all.Write(sum[:])
		teamAssets[name] = &teamAsset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	}
	teamVersion = hex.EncodeToString(all.Sum(nil)[:8])
	teamPage = template.Must(template.ParseFS(teamFiles, "team/team.html"))
}

// teamCSP is the page's Content-Security-Policy: its own script, style
// sheet and fetches, nothing inline, nothing from elsewhere, no framing.
const teamCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// durations are the meeting lengths the page offers.
var durations = []struct{ Value, Label string }{
	{"PT15M", "15 minutes"}, {"PT30M", "30 minutes"}, {"PT45M", "45 minutes"}, {"PT1H", "1 hour"},
	{"PT1H30M", "1½ hours"}, {"PT2H", "2 hours"}, {"PT3H", "3 hours"}, {"PT4H", "4 hours"},
}

// teamNamed serves /team/<group>.
func (h *Handler) teamNamed(w http.ResponseWriter, r *http.Request) error {
	// As for the group URL: an anonymous requester who must log in does
	// not learn which groups exist.
	if _, err := h.viewer(w, r); err != nil {
		return err
	}
	name := r.PathValue("group")
	if _, ok := h.opts.Team.Groups[name]; !ok {
		return notFound("no such group")
	}
	return h.teamPage(w, r, name, nil)
}

// teamListed serves /team?user=…&user=….
func (h *Handler) teamListed(w http.ResponseWriter, r *http.Request) error {
	if _, err := h.viewer(w, r); err != nil {
		return err
	}
	names := r.URL.Query()["user"]
	if len(names) == 0 {
		return badRequest("name the members: /team?user=alice&user=bob, or /team/<group>")
	}
	if err := h.checkGroupSize(names); err != nil {
		return err
	}
	for _, n := range names {
		if _, _, err := h.owner(n); err != nil {
			return err
		}
	}
	return h.teamPage(w, r, "", names)
}

// teamPage checks the page's parameters and writes the page. The week,
// the time zone and the slots are worked out by the script, from the
// parameters given here and the server's clock (data-now), so that the
// page shows "this week" as the server counts it.
func (h *Handler) teamPage(w http.ResponseWriter, r *http.Request, group string, users []string) error {
	q := r.URL.Query()
	start := q.Get("start")
	if start != "" {
		if _, err := time.Parse(time.DateOnly, start); err != nil {
			return badRequest("start: %q is not a date like 2025-03-10", clip(start))
		}
	}
	tz := q.Get("tz")
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil || tz == "Local" || len(tz) > 64 {
			return badRequest("tz: %q is not a time zone like Europe/Berlin", clip(tz))
		}
	}
	duration := q.Get("duration")
	if duration == "" {
		duration = "PT1H"
	}
	if d, err := calendar.ParseDuration(duration); err != nil || d.Days < 0 || d.Exact < 0 || (d.Days == 0 && d.Exact == 0) || len(duration) > 20 {
		return badRequest("duration: %q is not a positive duration like PT1H", clip(duration))
	}
	tentative := q.Get("tentative")
	if tentative != "" && tentative != "free" && tentative != "busy" {
		return badRequest("tentative: %q is not free or busy", clip(tentative))
	}

	type option struct {
		Value, Label string
		Selected     bool
	}
	var opts []option
	found := false
	for _, d := range durations {
		opts = append(opts, option{d.Value, d.Label, d.Value == duration})
		found = found || d.Value == duration
	}
	if !found {
		opts = append(opts, option{duration, duration, true})
	}
	title := "Free/busy: " + group
	root := "../"
	if group == "" {
		title = "Free/busy: " + strings.Join(users, ", ")
		root = "./"
	}
	data := struct {
		Title, Group, Root, Version, Now, Start, TZ, Duration string
		TentativeFree                                         bool
		Users                                                 []string
		Durations                                             []option
	}{
		Title: title, Group: group, Root: root, Version: teamVersion, Now: utcRFC3339(h.now(w)),
		Start: start, TZ: tz, Duration: duration, TentativeFree: tentative == "free", Users: users, Durations: opts,
	}
	var b bytes.Buffer
	if err := teamPage.Execute(&b, data); err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", teamCSP)
	hd["X-Content-Type-Options"] = nosniff
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	// The page carries the server's clock: it is not kept.
	hd.Set("Cache-Control", "no-store")
	_, err := w.Write(b.Bytes())
	return err
}

// teamAsset serves the page's script and style sheet, the same for
// everyone: they hold no data, so they are served without asking who
// asks, and cached for a day (the page names them with their version).
func (h *Handler) teamAsset(w http.ResponseWriter, r *http.Request) error {
	a, ok := teamAssets[r.PathValue("file")]
	if !ok {
		return notFound("no such file")
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd["X-Content-Type-Options"] = nosniff
	hd.Set("Cache-Control", "public, max-age=86400")
	hd.Set("Etag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	return nil
}

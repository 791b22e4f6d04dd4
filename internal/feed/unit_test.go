package feed

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/fbpub/fbpub/internal/acl"
	"github.com/fbpub/fbpub/internal/calendar"
	"github.com/fbpub/fbpub/internal/feed/feedtest"
	"github.com/fbpub/fbpub/internal/freebusy"
	"github.com/fbpub/fbpub/internal/testbed"
	"github.com/fbpub/fbpub/metrics"
)

// The fast tier: the cache against feedtest.Source, an in-memory Source
// that counts its calls. These tests start no server and run in
// milliseconds (go test -short runs them alone); the tests against
// Dovecot and Cyrus in the other files are the proof that the servers
// behave as the fake does.

// unit is a cache over a fake source, with a clock the test moves.
type unit struct {
	src   *feedtest.Source
	cache *Cache
	m     *metrics.Metrics
	now   atomic.Int64 // unix nanoseconds
}

var unitDay = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// newUnit makes a cache over a new fake source with opts (Source, Now and
// Metrics are set here). With synctest, clock reads the bubble's fake
// time instead of the test's own.
func newUnit(t *testing.T, opts Options, bubble bool) *unit {
	t.Helper()
	u := &unit{src: feedtest.New(), m: metrics.Discard()}
	u.now.Store(unitDay.UnixNano())
	opts.Source, opts.Metrics = u.src, u.m
	if !bubble {
		opts.Now = func() time.Time { return time.Unix(0, u.now.Load()) }
	}
	u.cache = New(opts)
	return u
}

func (u *unit) advance(d time.Duration) { u.now.Add(int64(d)) }

// share makes owner's folder path, readable by the proxy with rights,
// holding one event per summary (on unitDay, an hour each from 8:00).
func (u *unit) share(owner, path, rights string, summaries ...string) string {
	name := u.src.AddFolder(owner, path, rights)
	for i, s := range summaries {
		u.src.Append(name, u.message(s, i))
	}
	return name
}

func (u *unit) message(summary string, hour int) []byte {
	uid := strings.ToLower(strings.ReplaceAll(summary, " ", "-"))
	return testbed.CalendarMessage(summary, event(uid, summary, unitDay, 8+hour))
}

var asOwner = acl.Requester{User: "alice", Confirmed: true}

// calendar returns viewer's .ics of owner's folders, asked a second after
// the previous request (outside a synctest bubble).
func (u *unit) calendar(t *testing.T, owner string, viewer acl.Requester) (*Answer, error) {
	t.Helper()
	u.advance(time.Second)
	return u.cache.Calendar(context.Background(), CalendarQuery{Owner: owner, Viewer: viewer})
}

func (u *unit) mustCalendar(t *testing.T, owner string, viewer acl.Requester) *Answer {
	t.Helper()
	a, err := u.calendar(t, owner, viewer)
	if err != nil {
		t.Fatalf("Calendar(%s as %+v): %v", owner, viewer, err)
	}
	return a
}

// calls returns the fake's counts of the given methods, for messages.
func (u *unit) calls(methods ...string) string {
	var b []string
	for _, m := range methods {
		b = append(b, fmt.Sprintf("%s=%d", m, u.src.Calls(m)))
	}
	return strings.Join(b, " ")
}

// TestStateChangeResyncs: a request checks the owner's folder states; a
// folder whose state did not move is not read again, and its answer comes
// from the rendered cache; one whose state moved (a new message, a flag)
// is read again, and the answer shows the change. Rights, ACL and
// annotations are read again only when the state moved (or Revalidate
// passed).
func TestStateChangeResyncs(t *testing.T) {
	u := newUnit(t, Options{Revalidate: time.Hour}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning")

	a := u.mustCalendar(t, "alice", asOwner)
	if !strings.Contains(string(a.Body), "SUMMARY:Planning") || a.Result != "miss" {
		t.Fatalf("first answer (%s): %s", a.Result, a.Body)
	}
	if u.src.Calls("Fetch") != 1 || u.src.Calls("Details") != 1 {
		t.Fatalf("first request: %s; want one Fetch, one Details", u.calls("LookupOwner", "OwnerFolders", "Details", "Fetch"))
	}

	for i := range 3 {
		a = u.mustCalendar(t, "alice", asOwner)
		if a.Result != "hit" {
			t.Errorf("request %d at the same state: result %q, want hit", i+2, a.Result)
		}
	}
	if u.src.Calls("OwnerFolders") != 3 || u.src.Calls("Fetch") != 1 || u.src.Calls("Details") != 1 {
		t.Errorf("three requests at the same state: %s; want three checks, no Fetch, no Details", u.calls("OwnerFolders", "Details", "Fetch"))
	}

	u.src.Append(cal, u.message("Review", 2))
	a = u.mustCalendar(t, "alice", asOwner)
	if !strings.Contains(string(a.Body), "SUMMARY:Review") || a.Result != "miss" {
		t.Errorf("after an append (%s): %s", a.Result, a.Body)
	}
	if u.src.Calls("Fetch") != 2 || u.src.Calls("Details") != 2 {
		t.Errorf("after an append: %s; want a second Fetch and Details", u.calls("Details", "Fetch"))
	}

	u.src.SetDeleted(cal, 1, true)
	a = u.mustCalendar(t, "alice", asOwner)
	if strings.Contains(string(a.Body), "Planning") || !strings.Contains(string(a.Body), "Review") {
		t.Errorf("after flagging Planning \\Deleted: %s", a.Body)
	}
	if u.src.Calls("Fetch") != 3 {
		t.Errorf("after a flag change: %s; want a third Fetch", u.calls("Fetch"))
	}
}

// TestCheckInterval: within the check interval a request trusts the states
// it has, even when the folder moved meanwhile; past it, it reads them.
func TestCheckInterval(t *testing.T) {
	u := newUnit(t, Options{CheckInterval: time.Minute}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning")
	u.mustCalendar(t, "alice", asOwner)
	u.src.Append(cal, u.message("Review", 2))
	u.advance(30 * time.Second)
	if a := u.mustCalendar(t, "alice", asOwner); strings.Contains(string(a.Body), "Review") || u.src.Calls("OwnerFolders")+u.src.Calls("Fetch") != 1 {
		t.Errorf("within the interval: %s; want no check, no Fetch, the earlier answer", u.calls("OwnerFolders", "Fetch"))
	}
	u.advance(31 * time.Second)
	if a := u.mustCalendar(t, "alice", asOwner); !strings.Contains(string(a.Body), "Review") {
		t.Errorf("past the interval (%s): %s", u.calls("OwnerFolders", "Fetch"), a.Body)
	}
}

// TestHerdOneFetch: concurrent requests for a folder nobody read yet share
// one look-up, one Fetch and one render. synctest holds every request at
// the point where it waits, so that none can come after the Fetch ended.
func TestHerdOneFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u := newUnit(t, Options{}, true)
		u.share("alice", "Calendar", "lr", "Planning", "Review")
		release := make(chan struct{})
		u.src.OnCall(func(method, _ string) {
			if method == "Fetch" {
				<-release
			}
		})
		const n = 50
		answers := make([]*Answer, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { answers[i], errs[i] = u.calendar(t, "alice", asOwner) })
		}
		synctest.Wait() // every request waits: in the one Fetch, or for it
		if got := u.src.Calls("Fetch"); got != 1 {
			t.Errorf("%d requests waiting: %d Fetches under way, want 1", n, got)
		}
		close(release)
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if answers[i].Rendered != answers[0].Rendered {
				t.Fatalf("request %d got a rendering of its own", i)
			}
		}
		if u.src.Calls("LookupOwner") != 1 || u.src.Calls("Fetch") != 1 {
			t.Errorf("%d concurrent requests: %s; want one of each", n, u.calls("LookupOwner", "Details", "Fetch"))
		}
		if got := testutil.ToFloat64(u.m.Renders.WithLabelValues("calendar")); got != 1 {
			t.Errorf("%d concurrent requests rendered %v times, want 1", n, got)
		}
	})
}

// TestStaleWhenSourceFails: while the source cannot be read, a request
// gets the last answer marked stale; an owner never read is unavailable;
// when the source is back, answers are fresh again.
func TestStaleWhenSourceFails(t *testing.T) {
	u := newUnit(t, Options{}, false)
	u.share("alice", "Calendar", "lr", "Planning")
	u.share("bob", "Calendar", "lr", "Gym")
	first := u.mustCalendar(t, "alice", asOwner)

	u.src.Fail(errors.New("connection refused"))
	a := u.mustCalendar(t, "alice", asOwner)
	if !a.Stale || a.Result != "stale" || string(a.Body) != string(first.Body) {
		t.Errorf("during the outage: stale %v, result %q; want the last answer marked stale", a.Stale, a.Result)
	}
	if _, err := u.calendar(t, "bob", acl.Requester{User: "bob"}); !errors.Is(err, ErrUnavailable) {
		t.Errorf("an owner never read, during the outage: %v, want ErrUnavailable", err)
	}

	u.src.Fail(nil)
	if a := u.mustCalendar(t, "alice", asOwner); a.Stale {
		t.Errorf("after the outage: still stale (%s)", a.Result)
	}
	if a := u.mustCalendar(t, "bob", acl.Requester{User: "bob"}); !strings.Contains(string(a.Body), "Gym") {
		t.Errorf("bob after the outage: %s", a.Body)
	}
}

// TestCheckBudgetAnswersStale: a check slower than the budget gives the
// request the answer it had, marked stale, while the check goes on; the
// next request, once the check is done, is fresh and sees the change.
func TestCheckBudgetAnswersStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { heldPastBudget(t, "OwnerFolders", "check") })
}

// heldPastBudget adds an event to alice's folder after a first answer,
// holds the source's method when the next request calls it, and checks
// that the request gets the first answer, stale, after the check budget,
// and the next one, after the held call ends, the new event. what names
// the held work for messages. It runs in a synctest bubble.
func heldPastBudget(t *testing.T, method, what string) (u *unit, held int) {
	u = newUnit(t, Options{CheckBudget: 300 * time.Millisecond}, true)
	cal := u.share("alice", "Calendar", "lr", "Planning")
	u.mustCalendar(t, "alice", asOwner)
	u.src.Append(cal, u.message("Review", 2))
	time.Sleep(time.Second) // the next request comes after the first check

	release := make(chan struct{})
	u.src.OnCall(func(m, _ string) {
		if m == method {
			<-release
		}
	})
	start := time.Now()
	a := u.mustCalendar(t, "alice", asOwner)
	if waited := time.Since(start); !a.Stale || strings.Contains(string(a.Body), "Review") || waited != 300*time.Millisecond {
		t.Errorf("a hung %s: stale %v after %v; want the earlier answer, stale, after the budget", what, a.Stale, waited)
	}
	held = u.src.Calls(method)
	close(release)
	synctest.Wait() // the detached work finishes
	u.src.OnCall(nil)
	time.Sleep(time.Second)
	if a := u.mustCalendar(t, "alice", asOwner); a.Stale || !strings.Contains(string(a.Body), "Review") {
		t.Errorf("after the %s: stale %v: %s", what, a.Stale, a.Body)
	}
	return u, held
}

// TestSlowSyncAnswersStale: a check that finds a change is quick, but
// reading the change may not be (a large change, a slow server, a
// message slow to parse, which a black-box sweep made take minutes): a
// request that holds an answer waits the check budget for it too, then
// gets its earlier answer marked stale, while the read goes on for the
// next request.
func TestSlowSyncAnswersStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		u, held := heldPastBudget(t, "Fetch", "read")
		if n := u.src.Calls("Fetch"); n != held {
			t.Errorf("%d more reads after the slow one, want none: it went on for the next request", n-held)
		}
	})
}

// TestUnknownOwnerLookups: a name the cache does not know is looked up
// on the source; one it did not find is not looked up again within
// NegativeTTL; look-ups are limited to lookupBurst at once, beyond which
// a name is unavailable, or not found once a discovery pass has listed
// every owner. A name that cannot be an owner is never looked up.
func TestUnknownOwnerLookups(t *testing.T) {
	ctx := context.Background()
	u := newUnit(t, Options{NegativeTTL: time.Minute}, false)
	u.share("alice", "Calendar", "lr", "Planning")

	for i, want := range []int{1, 1} {
		if _, err := u.cache.OwnerFolders(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("look-up %d of nobody: %v, want ErrNotFound", i+1, err)
		}
		if got := u.src.Calls("LookupOwner"); got != want {
			t.Errorf("after request %d for nobody: %d look-ups, want %d", i+1, got, want)
		}
	}
	u.advance(2 * time.Minute)
	u.cache.OwnerFolders(ctx, "nobody")
	if got := u.src.Calls("LookupOwner"); got != 2 {
		t.Errorf("past NegativeTTL: %d look-ups, want 2", got)
	}
	if _, err := u.cache.OwnerFolders(ctx, "al*"); !errors.Is(err, ErrNotFound) || u.src.Calls("LookupOwner") != 2 {
		t.Errorf("OwnerFolders(al*) = %v after %d look-ups; want ErrNotFound, no look-up", err, u.src.Calls("LookupOwner"))
	}

	u.advance(time.Minute) // the bucket is full again
	u.src.ResetCalls()
	var unavailable int
	for i := range lookupBurst + 10 {
		_, err := u.cache.OwnerFolders(ctx, fmt.Sprint("ghost", i))
		if errors.Is(err, ErrUnavailable) {
			unavailable++
		} else if !errors.Is(err, ErrNotFound) {
			t.Fatalf("ghost%d: %v", i, err)
		}
	}
	if got := u.src.Calls("LookupOwner"); got != lookupBurst || unavailable != 10 {
		t.Errorf("%d made-up names at once: %d look-ups, %d unavailable; want %d and 10", lookupBurst+10, got, unavailable, lookupBurst)
	}

	if err := u.cache.Discover(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := u.cache.OwnerFolders(ctx, "ghost-after-discovery"); !errors.Is(err, ErrNotFound) || u.src.Calls("LookupOwner") != lookupBurst {
		t.Errorf("beyond the rate, after discovery: %v, %d look-ups; want ErrNotFound without a look-up", err, u.src.Calls("LookupOwner"))
	}
	if fs, err := u.cache.OwnerFolders(ctx, "ALICE"); err != nil || len(fs) != 1 {
		t.Errorf("OwnerFolders(ALICE) after discovery = %v, %v", fs, err)
	}
}

// The events of TestViewsPerAccess, one of each class, by summary.
const (
	publicEvent       = "Planning"
	confidentialEvent = "Salary talk"
	privateEvent      = "Doctor"
)

func classEvent(summary, class string, hour int) []byte {
	ics := strings.Replace(event(strings.ToLower(strings.ReplaceAll(summary, " ", "-")), summary, unitDay, 8+hour),
		"SUMMARY:", "LOCATION:Room "+summary+"\r\nCLASS:"+class+"\r\nSUMMARY:", 1)
	return testbed.CalendarMessage(summary, ics)
}

// TestViewsPerAccess: what each access level sees of one folder with a
// public, a confidential and a private event. The owner sees everything;
// a reader (r in the folder's ACL) the public event whole and the others'
// times; a user with l only, and an anonymous requester, the busy view;
// with the ACL unknown to the proxy (no a right), a reader gets the busy
// view too (fail closed); with free/busy for authenticated users only, an
// anonymous requester gets nothing.
func TestViewsPerAccess(t *testing.T) {
	type view struct {
		who     acl.Requester
		shown   []string // SUMMARY values
		hidden  []string
		refused bool
	}
	all := []string{publicEvent, confidentialEvent, privateEvent}
	ownerView := view{who: asOwner, shown: all}
	readerView := view{who: acl.Requester{User: "bob"}, shown: []string{publicEvent}, hidden: []string{confidentialEvent, privateEvent}}
	busyView := func(r acl.Requester) view { return view{who: r, hidden: all} }
	for _, tc := range []struct {
		name   string
		rights string // the proxy's
		policy acl.Policy
		views  []view
	}{
		{"acl known", "lra", acl.Policy{}, []view{ownerView, readerView, busyView(acl.Requester{User: "carol"}), busyView(acl.Requester{Anonymous: true})}},
		{"acl unknown", "lr", acl.Policy{}, []view{ownerView, busyView(acl.Requester{User: "bob"})}},
		{"authenticated only", "lra", acl.Policy{FreeBusy: acl.AuthenticatedOnly}, []view{readerView, {who: acl.Requester{Anonymous: true}, refused: true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUnit(t, Options{Policy: &tc.policy}, false)
			cal := u.src.AddFolder("alice", "Calendar", tc.rights)
			u.src.SetACL(cal, map[string]string{"alice": "lrswipkxtecda", "bob": "lr", "carol": "l"})
			u.src.Append(cal, classEvent(publicEvent, "PUBLIC", 0))
			u.src.Append(cal, classEvent(confidentialEvent, "CONFIDENTIAL", 1))
			u.src.Append(cal, classEvent(privateEvent, "PRIVATE", 2))
			for _, v := range tc.views {
				a, err := u.calendar(t, "alice", v.who)
				if v.refused {
					if !errors.Is(err, ErrNotFound) {
						t.Errorf("Calendar as %+v: %v, want ErrNotFound", v.who, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Calendar as %+v: %v", v.who, err)
				}
				body := string(a.Body)
				if got := strings.Count(body, "BEGIN:VEVENT"); got != 3 {
					t.Errorf("as %+v: %d events, want all 3 (their times at least):\n%s", v.who, got, body)
				}
				for _, s := range v.shown {
					if !strings.Contains(body, "SUMMARY:"+s) || !strings.Contains(body, "LOCATION:Room "+s) {
						t.Errorf("as %+v: %q not shown:\n%s", v.who, s, body)
					}
				}
				for _, s := range v.hidden {
					if strings.Contains(body, s) {
						t.Errorf("as %+v: %q shown:\n%s", v.who, s, body)
					}
				}
				fb, err := u.cache.FreeBusy(context.Background(), FreeBusyQuery{Owner: "alice", Viewer: v.who, Extended: true,
					Window: freebusy.Window{Start: unitDay, End: unitDay.AddDate(0, 0, 1)}})
				if err != nil {
					t.Fatalf("FreeBusy(extended) as %+v: %v", v.who, err)
				}
				unfolded := strings.ReplaceAll(string(fb.Body), "\r\n ", "")
				for _, s := range v.hidden {
					if strings.Contains(unfolded, base64.StdEncoding.EncodeToString([]byte(s))) {
						t.Errorf("extended free/busy as %+v shows %q:\n%s", v.who, s, fb.Body)
					}
				}
				for _, s := range v.shown {
					if !strings.Contains(unfolded, base64.StdEncoding.EncodeToString([]byte(s))) {
						t.Errorf("extended free/busy as %+v lacks %q:\n%s", v.who, s, fb.Body)
					}
				}
			}
		})
	}
}

// TestIncidencesForCounts: a folder of alice's annotated incidences-for
// "readers" makes its readers busy: bob's free/busy counts its events
// beside his own; without the annotation, only alice's; "nobody" makes
// no one busy, its owner included.
func TestIncidencesForCounts(t *testing.T) {
	ctx := context.Background()
	// Cyrus's rule: bob, who reads alice's folder, may not write its
	// annotations (see TestSharedFolderCountsFor).
	u := newUnit(t, Options{Metadata: func() acl.MetadataRule { return acl.CyrusMetadata }}, false)
	shared := u.share("alice", "Calendar/Team", "lra", "Offsite")
	u.src.SetACL(shared, map[string]string{"alice": "lrswipkxtecda", "bob": "lr"})
	u.src.SetIncidencesFor(shared, "readers")
	own := u.src.AddFolder("bob", "Calendar", "lr")
	u.src.Append(own, u.message("Gym", 3))
	window := freebusy.Window{Start: unitDay, End: unitDay.AddDate(0, 0, 1)}
	busy := func(user string) string {
		t.Helper()
		u.advance(time.Second)
		a, err := u.cache.FreeBusy(ctx, FreeBusyQuery{Owner: user, Viewer: acl.Requester{User: user}, Window: window})
		if errors.Is(err, ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatalf("FreeBusy(%s): %v", user, err)
		}
		return string(a.Body)
	}
	u.cache.Discover(ctx) // alice's folders become known without a request for her
	offsite, gym := "20250303T080000Z/20250303T090000Z", "20250303T110000Z/20250303T120000Z"
	if b := busy("bob"); !strings.Contains(b, offsite) || !strings.Contains(b, gym) {
		t.Errorf("bob's free/busy with alice's folder counting for readers:\n%s", b)
	}
	if b := busy("carol"); b != "" {
		t.Errorf("carol, who may not read alice's folder, is busy:\n%s", b)
	}
	u.src.SetIncidencesFor(shared, "")
	if b := busy("bob"); strings.Contains(b, offsite) || !strings.Contains(b, gym) {
		t.Errorf("bob's free/busy once the annotation is gone:\n%s", b)
	}
	if b := busy("alice"); !strings.Contains(b, offsite) {
		t.Errorf("alice's free/busy without annotation lacks her own event:\n%s", b)
	}
	u.src.SetIncidencesFor(shared, "nobody")
	if b := busy("alice"); strings.Contains(b, offsite) {
		t.Errorf("alice's free/busy with incidences-for nobody:\n%s", b)
	}
}

// TestRevokedGrantDropsFolder: a folder the proxy may no longer list
// leaves the answers at the next check, and its snapshot is forgotten; a
// folder it may list but not read is not published either.
func TestRevokedGrantDropsFolder(t *testing.T) {
	u := newUnit(t, Options{}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning")
	u.mustCalendar(t, "alice", asOwner)
	for _, rights := range []string{"l", ""} {
		u.src.SetRights(cal, rights)
		if _, err := u.calendar(t, "alice", asOwner); !errors.Is(err, ErrNotFound) {
			t.Errorf("proxy rights %q: %v, want ErrNotFound", rights, err)
		}
		u.cache.mu.Lock()
		kept := u.cache.snaps[cal] != nil
		u.cache.mu.Unlock()
		if kept {
			t.Errorf("proxy rights %q: the folder's snapshot is still held", rights)
		}
	}
	u.src.SetRights(cal, "lr")
	if a := u.mustCalendar(t, "alice", asOwner); !strings.Contains(string(a.Body), "Planning") {
		t.Errorf("granted again: %s", a.Body)
	}
}

// TestIncrementalUnit: after a folder was read, a change fetches the
// content of the new messages only; a folder recreated (a new
// UIDVALIDITY) is read whole again.
func TestIncrementalUnit(t *testing.T) {
	u := newUnit(t, Options{}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning", "Review", "Lunch")
	u.mustCalendar(t, "alice", asOwner)
	if got := u.src.Delivered(); got != 3 {
		t.Fatalf("first read: %d messages delivered, want 3", got)
	}
	u.src.ResetCalls()
	u.src.Append(cal, u.message("Gym", 4))
	u.src.SetDeleted(cal, 1, true)
	a := u.mustCalendar(t, "alice", asOwner)
	if got := u.src.Delivered(); got != 1 || u.src.Calls("Fetch") != 1 {
		t.Errorf("after an append and a flag: %d messages delivered in %d fetches, want 1 in 1", got, u.src.Calls("Fetch"))
	}
	if body := string(a.Body); strings.Contains(body, "Planning") || !strings.Contains(body, "Review") || !strings.Contains(body, "Gym") {
		t.Errorf("after an append and a flag:\n%s", body)
	}

	u.src.ResetCalls()
	u.src.Recreate(cal)
	a = u.mustCalendar(t, "alice", asOwner)
	if got := u.src.Delivered(); got != 3 {
		t.Errorf("after a new UIDVALIDITY: %d messages delivered, want the 3 not deleted", got)
	}
	if body := string(a.Body); strings.Count(body, "BEGIN:VEVENT") != 3 || strings.Contains(body, "Planning") {
		t.Errorf("after a new UIDVALIDITY:\n%s", body)
	}
}

// TestChangedForcesCheck: with a long check interval, a change the server
// announces in a published folder makes the next request for its owner
// check again; an announcement without a folder makes every owner's next
// request check (a new folder may have appeared).
func TestChangedForcesCheck(t *testing.T) {
	u := newUnit(t, Options{CheckInterval: time.Hour}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning")
	u.mustCalendar(t, "alice", asOwner)
	u.src.Append(cal, u.message("Review", 2))
	if a := u.mustCalendar(t, "alice", asOwner); strings.Contains(string(a.Body), "Review") {
		t.Fatalf("the change was seen without an announcement: the test proves nothing")
	}
	u.cache.Changed(cal)
	if a := u.mustCalendar(t, "alice", asOwner); !strings.Contains(string(a.Body), "Review") {
		t.Errorf("after Changed(%s):\n%s", cal, a.Body)
	}
	u.share("alice", "Calendar/Work", "lr", "Standup")
	u.advance(time.Millisecond) // announced after the last check
	u.cache.Changed("")
	if a := u.mustCalendar(t, "alice", asOwner); !strings.Contains(string(a.Body), "Standup") {
		t.Errorf("after Changed(\"\"), the new folder is missing:\n%s", a.Body)
	}
	if got := u.src.Calls("OwnerFolders"); got != 2 {
		t.Errorf("%d checks, want 2: one per announcement", got)
	}
}

// TestWarmRestartUnit: a cache started on the state directory of another
// serves the folders it saved without fetching them again while their
// states hold, and fetches only what changed after.
func TestWarmRestartUnit(t *testing.T) {
	dir := t.TempDir()
	u := newUnit(t, Options{StateDir: dir}, false)
	cal := u.share("alice", "Calendar", "lr", "Planning", "Review")
	first := u.mustCalendar(t, "alice", asOwner)

	restarted := New(Options{Source: u.src, StateDir: dir, Now: u.cache.opts.Now})
	u.src.ResetCalls()
	a, err := restarted.Calendar(context.Background(), CalendarQuery{Owner: "alice", Viewer: asOwner})
	if err != nil {
		t.Fatal(err)
	}
	if u.src.Calls("Fetch") != 0 || string(a.Body) != string(first.Body) {
		t.Errorf("after a restart: %s; want no Fetch and the same feed", u.calls("LookupOwner", "Fetch"))
	}
	u.src.Append(cal, u.message("Lunch", 4))
	u.advance(time.Second)
	a, err = restarted.Calendar(context.Background(), CalendarQuery{Owner: "alice", Viewer: asOwner})
	if err != nil {
		t.Fatal(err)
	}
	if u.src.Delivered() != 1 || !strings.Contains(string(a.Body), "Lunch") || !strings.Contains(string(a.Body), "Planning") {
		t.Errorf("a change after the restart: %d messages delivered, want 1:\n%s", u.src.Delivered(), a.Body)
	}
}

// TestDiscoveryUnit: discovery lists the owners who share something and
// checks each, so that a request for one of them needs no look-up; an
// owner who stopped sharing leaves the published folders.
func TestDiscoveryUnit(t *testing.T) {
	ctx := context.Background()
	u := newUnit(t, Options{}, false)
	u.share("alice", "Calendar", "lr", "Planning")
	bob := u.share("bob", "Calendar", "lr", "Gym")
	u.src.AddFolder("carol", "Calendar", "") // not shared with the proxy
	fs, err := u.cache.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Owner != "alice" || fs[1].Owner != "bob" {
		t.Fatalf("Folders = %+v; want alice's and bob's", fs)
	}
	if u.src.Calls("Owners") != 1 || u.src.Calls("OwnerFolders") != 2 {
		t.Errorf("discovery: %s; want one listing and a check per owner", u.calls("Owners", "OwnerFolders"))
	}
	u.mustCalendar(t, "bob", acl.Requester{User: "bob"})
	if got := u.src.Calls("LookupOwner"); got != 0 {
		t.Errorf("a request for an owner discovery found looked them up %d times", got)
	}
	u.src.SetRights(bob, "")
	u.advance(2 * DefaultDiscovery)
	if fs, err = u.cache.Folders(ctx); err != nil || len(fs) != 1 || fs[0].Owner != "alice" {
		t.Errorf("after bob stopped sharing: Folders = %+v, %v", fs, err)
	}
}

// TestAnnotationsRevalidated: an annotation moves no state, so the cache
// reads it again within Revalidate: a folder whose Kolab folder-type
// annotation turns to "mail" stops being published by then.
func TestAnnotationsRevalidated(t *testing.T) {
	u := newUnit(t, Options{Revalidate: time.Minute}, false)
	cal := u.share("alice", "Calendar", "lra", "Planning") // a: no one else may annotate it
	u.src.SetType(cal, "event")
	u.mustCalendar(t, "alice", asOwner)
	u.src.SetType(cal, "mail")
	u.mustCalendar(t, "alice", asOwner) // within Revalidate: details still trusted
	if got := u.src.Calls("Details"); got != 1 {
		t.Errorf("within Revalidate: %d Details, want 1", got)
	}
	u.advance(time.Minute)
	if _, err := u.calendar(t, "alice", asOwner); !errors.Is(err, ErrNotFound) {
		t.Errorf("past Revalidate, a folder annotated mail: %v, want ErrNotFound", err)
	}
}

// TestPatternRoots: the folders look-ups ask about are the fixed leading
// segments of publish.folders.
func TestPatternRoots(t *testing.T) {
	for _, tt := range []struct {
		patterns, want []string
	}{
		{DefaultPatterns, []string{"Calendar"}},
		{[]string{"Kalender", "Kalender/*", "Calendar/*"}, []string{"Kalender", "Calendar"}},
		{[]string{"Groupware/Cal*"}, []string{"Groupware"}},
		{[]string{"*", "Cal?ndar", "[KC]al*"}, nil},
	} {
		if got := patternRoots(tt.patterns); !slices.Equal(got, tt.want) {
			t.Errorf("patternRoots(%q) = %q, want %q", tt.patterns, got, tt.want)
		}
	}
}

// TestCustomZonesOfOneName: two messages that define one TZID no time
// zone database knows (Outlook's "Customized Time Zone") with different
// rules each keep their own in the feed: an answer carries one VTIMEZONE
// per name, and the second message's event was read with the first's
// rules, six hours off, in every client (a black-box sweep), while
// free/busy had it right.
func TestCustomZonesOfOneName(t *testing.T) {
	u := newUnit(t, Options{}, false)
	cal := u.src.AddFolder("alice", "Calendar", "lr")
	msg := func(uid, offset, day string) []byte {
		return testbed.CalendarMessage(uid, "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\n"+
			"BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:"+offset+"\r\nTZOFFSETTO:"+offset+"\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"+
			"BEGIN:VEVENT\r\nUID:"+uid+"\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=Customized Time Zone:"+day+"T100000\r\n"+
			"DTEND;TZID=Customized Time Zone:"+day+"T110000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
	}
	u.src.Append(cal, msg("own", "+0100", "20261218"))
	u.src.Append(cal, msg("wri", "-0500", "20261219"))
	for _, viewer := range []acl.Requester{asOwner, {Anonymous: true}} {
		body := u.mustCalendar(t, "alice", viewer).Body
		cals, err := calendar.Decode(body)
		if err != nil {
			t.Fatal(err)
		}
		var starts []string
		for _, o := range calendar.Objects(cals) {
			in, err := o.Instances(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range in {
				starts = append(starts, i.Start.UTC().Format(time.RFC3339))
			}
		}
		slices.Sort(starts)
		if r := zoneRenames(calendar.UsedTimezones(calendar.Objects(cals))); !viewer.Anonymous && len(r) != 0 {
			t.Errorf("the names given are given again when read back: %v", r)
		}
		if want := []string{"2026-12-18T09:00:00Z", "2026-12-19T15:00:00Z"}; !slices.Equal(starts, want) {
			t.Errorf("%+v: the feed's events start at %v, want %v:\n%s", viewer, starts, want, body)
		}
		if n := strings.Count(string(body), "BEGIN:VTIMEZONE"); n != 2 {
			t.Errorf("%+v: %d VTIMEZONEs, want one for each definition:\n%s", viewer, n, body)
		}
	}
}
